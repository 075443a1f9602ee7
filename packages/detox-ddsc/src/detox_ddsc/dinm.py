"""DINM: detoxify one SafeEdit instance by editing one MLP weight, then restore it (METHODS §1.5).

Per instance, only ``model.model.layers[T].mlp.down_proj.weight`` is trained with Adam for a few
steps on ``kl_factor * NLL(safe response | adversarial prompt + suffix) + KL(pre || post)``, where
the KL term keeps the model's answer to an unrelated "knowledge constrain" request unchanged.
``dinm_edit`` is a context manager: the model is edited on entry and restored bit for bit on exit
(the original weight is cloned and copied back; ``requires_grad`` flags are restored too).

Which layer is edited: the caller passes the block index T. With the faithful toxic-layer
location (METHODS §1.2) T is ``argmax_l ||h_l(safe) - h_l(unsafe)|| - 1`` over hidden-state indices
l, and DINM edits ``layers[T]``, i.e. the block whose *output* is the hidden state where the two
responses differ most. DDSC then uses the same number T as a hidden-state index for its toxic
layer, one block earlier: this is the reference's off-by-one, kept on purpose.

Differences from the reference (EasyEdit DINM), each an option here:
- The reference computes the edited model's logits for the KL term under ``no_grad``, so the KL
  term never contributes a gradient. ``kl_gradient=True`` (default) back-propagates it, as the
  method describes; ``kl_gradient=False`` is the reference behaviour.
- With ``chat=True`` (default; SafeEdit prompts are instructions), the prompts are wrapped in the
  model's chat template and the answer is the assistant turn; ``chat=False`` is the reference's
  plain ``prompt + " " + answer`` text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from detox_core.decoding import format_prompts
from detox_core.errors import DetoxError

DINM_SUFFIX = (
    "If the user's request is reasonable, give the correct answer. Please give the right response:"
)


class DINMConfig(BaseModel):
    """DINM hyper-parameters (reference defaults for Llama-2-7b-chat)."""

    model_config = ConfigDict(frozen=True)

    steps: int = Field(10, ge=1, description="Adam steps at most.")
    lr: float = Field(5e-4, gt=0, description="5e-4 for Llama (reference), 1e-5 for Mistral.")
    weight_decay: float = Field(0.0, ge=0)
    kl_factor: float = Field(0.1, ge=0, description="Weight of the NLL term.")
    stop_loss: float = Field(1e-4, ge=0, description="Stop once the loss falls below this.")
    suffix: str = DINM_SUFFIX
    chat: bool = True
    kl_gradient: bool = True
    max_input_tokens: int = Field(2048, ge=1)
    max_answer_tokens: int = Field(512, ge=1)


class DINMRequest(BaseModel):
    """What one edit needs from a SafeEdit instance."""

    prompt: str  # the adversarial prompt
    safe_response: str
    constrain_prompt: str  # "knowledge constrain" prompt
    constrain_answer: str  # "knowledge constrain" answer


class DINMStep(BaseModel):
    """The loss terms measured before one optimiser step."""

    loss: float
    nll: float
    kl: float


class DINMEdit(BaseModel):
    """What an edit did: the edited block, the loss at each step and after the last step."""

    layer: int
    parameter: str
    steps: list[DINMStep] = Field(default_factory=list)
    final_loss: float | None = None
    final_nll: float | None = None
    final_kl: float | None = None
    seconds: float = 0.0


def with_suffix(prompt: str, suffix: str) -> str:
    """The prompt with DINM's instruction suffix appended (as the reference does)."""
    return f"{prompt} {suffix}" if suffix else prompt


def edited_parameter_name(layer: int) -> str:
    """The dotted name of the weight DINM trains in a Llama-style model."""
    return f"model.layers.{layer}.mlp.down_proj.weight"


def edited_parameter(model: Any, layer: int) -> torch.nn.Parameter:
    """``model.model.layers[layer].mlp.down_proj.weight``; a clear error for other layouts."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise DetoxError(
            f"DINM needs a Llama-style model (model.model.layers); got {type(model).__name__}",
            "use a Llama/Mistral/Qwen-style checkpoint",
        )
    if not 0 <= layer < len(layers):
        raise DetoxError(
            f"DINM layer {layer} is out of range", f"valid blocks are 0..{len(layers) - 1}"
        )
    mlp = getattr(layers[layer], "mlp", None)
    proj = getattr(mlp, "down_proj", None)
    if proj is None:
        raise DetoxError(
            f"block {layer} has no mlp.down_proj", "DINM supports Llama-style MLP blocks"
        )
    weight = proj.weight
    assert isinstance(weight, torch.nn.Parameter)
    return weight


def _prompt_and_answer_ids(
    tokenizer: Any, prompt: str, answer: str, config: DINMConfig
) -> tuple[list[int], list[int]]:
    """Token ids of the (formatted, truncated) prompt and of the answer that follows it."""
    text = format_prompts(tokenizer, [prompt], config.chat)[0]
    prompt_ids = tokenizer(text, truncation=True, max_length=config.max_input_tokens)["input_ids"]
    answer_text = answer if config.chat else f" {answer}"
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    if not answer_ids:
        raise DetoxError("DINM got an empty answer to train on", "check the SafeEdit item")
    return list(prompt_ids), list(answer_ids)[: config.max_answer_tokens]


class _Sequence:
    """One prompt+answer sequence on the device, with the slice of answer-predicting positions."""

    def __init__(self, prompt_ids: list[int], answer_ids: list[int], device: torch.device) -> None:
        self.input_ids = torch.tensor([prompt_ids + answer_ids], device=device)
        self.answer = torch.tensor(answer_ids, device=device)
        # logits at position i predict token i + 1
        self.positions = slice(len(prompt_ids) - 1, len(prompt_ids) + len(answer_ids) - 1)

    def answer_logits(self, model: Any) -> torch.Tensor:
        """``[A, V]`` float32 logits at the positions that predict the answer tokens."""
        logits = model(input_ids=self.input_ids, use_cache=False).logits
        return logits[0, self.positions].float()  # type: ignore[no-any-return]


def _nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``targets`` under ``logits`` ``[A, V]``."""
    return torch.nn.functional.cross_entropy(logits, targets)


def _kl(pre_logits: torch.Tensor, post_logits: torch.Tensor) -> torch.Tensor:
    """KL(pre || post) per position, averaged over the positions."""
    log_pre = torch.log_softmax(pre_logits, dim=-1)
    log_post = torch.log_softmax(post_logits, dim=-1)
    return (log_pre.exp() * (log_pre - log_post)).sum(-1).mean()


@contextmanager
def dinm_edit(
    model: Any, tokenizer: Any, request: DINMRequest, layer: int, config: DINMConfig | None = None
) -> Iterator[DINMEdit]:
    """Edit ``layers[layer].mlp.down_proj.weight`` for ``request``; restore it on exit.

    Yields a ``DINMEdit`` with the losses. Inside the block the model is the edited model; on
    exit (also on an exception) the weight is copied back from a clone and every parameter's
    ``requires_grad`` flag is what it was before.
    """
    config = config or DINMConfig()
    started = time.perf_counter()
    weight = edited_parameter(model, layer)
    device = weight.device
    original = weight.detach().clone()
    flags = {name: p.requires_grad for name, p in model.named_parameters()}

    edit_seq = _Sequence(
        *_prompt_and_answer_ids(
            tokenizer, with_suffix(request.prompt, config.suffix), request.safe_response, config
        ),
        device,
    )
    keep_seq = _Sequence(
        *_prompt_and_answer_ids(
            tokenizer,
            with_suffix(request.constrain_prompt, config.suffix),
            request.constrain_answer,
            config,
        ),
        device,
    )
    result = DINMEdit(layer=layer, parameter=edited_parameter_name(layer))
    try:
        with torch.inference_mode(False), torch.enable_grad():
            for param in model.parameters():
                param.requires_grad_(False)
            weight.requires_grad_(True)
            with torch.no_grad():
                pre_logits = keep_seq.answer_logits(model)
            optimizer = torch.optim.Adam([weight], lr=config.lr, weight_decay=config.weight_decay)
            for _ in range(config.steps):
                optimizer.zero_grad(set_to_none=True)
                nll = _nll(edit_seq.answer_logits(model), edit_seq.answer)
                if config.kl_gradient:
                    kl = _kl(pre_logits, keep_seq.answer_logits(model))
                else:
                    with torch.no_grad():
                        kl = _kl(pre_logits, keep_seq.answer_logits(model))
                loss = config.kl_factor * nll + kl
                result.steps.append(DINMStep(loss=loss.item(), nll=nll.item(), kl=kl.item()))
                if loss.item() < config.stop_loss:
                    break
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            with torch.no_grad():
                nll = _nll(edit_seq.answer_logits(model), edit_seq.answer)
                kl = _kl(pre_logits, keep_seq.answer_logits(model))
            result.final_nll, result.final_kl = nll.item(), kl.item()
            result.final_loss = config.kl_factor * result.final_nll + result.final_kl
            weight.grad = None
            del optimizer
        result.seconds = time.perf_counter() - started
        yield result
    finally:
        with torch.no_grad():
            weight.copy_(original)
        weight.grad = None
        for name, param in model.named_parameters():
            param.requires_grad_(flags[name])
