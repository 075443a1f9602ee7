"""LoRA adapters through peft: target modules chosen per architecture (METHODS §2.7)."""

from __future__ import annotations

from typing import Any

from detox_cmd.training.config import CMDTrainConfig
from detox_core.errors import DetoxError

# model_type -> attention projections the paper adapts (GPT-2: fused c_attn; others: q and v).
TARGET_MODULES: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
}


def module_names(model: Any) -> set[str]:
    """The last name component of every submodule (``q_proj``, ``c_attn``, ...)."""
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


ALL_LINEAR = "all-linear"


def linear_module_names(model: Any) -> list[str]:
    """The last name component of every linear submodule (``Linear``, GPT-2's ``Conv1D``) but
    the output head, sorted."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if name and isinstance(module, torch.nn.Linear | Conv1D) and module is not head
        }
    )


def lora_target_modules(model: Any, override: list[str] | None = None) -> list[str]:
    """The modules to adapt: ``override`` if given (checked; ``["all-linear"]`` names every
    Linear layer but the output head), else the architecture's default."""
    names = module_names(model)
    if override == [ALL_LINEAR]:
        return linear_module_names(model)
    if override:
        missing = [m for m in override if m not in names]
        if missing:
            raise DetoxError(
                f"this model has no module named {', '.join(missing)}",
                f"choose among e.g. {', '.join(sorted(names)[:12])}",
            )
        return list(override)
    model_type = str(getattr(model.config, "model_type", ""))
    if model_type in TARGET_MODULES:
        return list(TARGET_MODULES[model_type])
    for candidate in (["q_proj", "v_proj"], ["c_attn"], ["query", "value"]):
        if set(candidate) <= names:
            return candidate
    raise DetoxError(
        f"no default LoRA target modules for model type {model_type!r}",
        "name them with --lora-target-modules",
    )


def apply_lora(model: Any, config: CMDTrainConfig, targets: list[str]) -> Any:
    """Wrap ``model`` in a trainable peft LoRA adapter (base weights frozen)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)
