"""The DDSC decoder (METHODS §1.3): a StepScorer for detox-core's batched decode loop.

At every step the scorer takes the last position of the hidden states it needs (candidates C,
the toxic layer T, and the end layer E when E is not the final hidden state), passes them through
``lm_head`` in one matrix product, chooses the hallucination layer H and the safe layer S with
``detox_kernels.select_layers`` and scores the vocabulary with ``detox_kernels.contrast_scores``:

    score = (log p_E - w * log q_B) / tau   on the APC head {x : p_E(x) >= alpha * max p_E},
    -inf elsewhere, with q_B = softmax over the head of z_H + z_T - z_S (DDSC) or z_H (DoLa),

where w is ``contrast_weight`` (1 = the reference) and tau is ``contrast_temperature`` (1 = the
reference). The decode loop then applies the repetition penalty and picks the token (greedy, or
temperature/top-p sampling). Everything stays on the device: no ``.item()``, no loop over rows or
layers; the chosen H and S are recorded as device tensors and copied to the host once at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel

from detox_core.decoding import DecodeOutput, decode
from detox_core.errors import DetoxError
from detox_ddsc.config import DDSCConfig
from detox_ddsc.layers import check_toxic_layer, parse_layers
from detox_ddsc.toxic_layer import (
    check_profile,
    load_default_profile,
    load_profile,
    profile_file_key,
)
from detox_ddsc.types import Mode
from detox_kernels import contrast_scores, select_layers

END_ROW = -1  # marks "the end layer's logits" as the toxic row (T == E)


class DDSCOutput(BaseModel):
    """Texts, the chosen layers and why each row stopped.

    ``layers[row][step] = (H, S)`` as hidden-state indices, one entry per generated token (the EOS
    step included); S is None in DoLa mode.
    """

    texts: list[str]
    layers: list[list[tuple[int, int | None]]]
    stopped: list[str]
    token_ids: list[list[int]] = []


@dataclass(frozen=True)
class LayerPlan:
    """Which hidden states one step reads, and where each lands in the stacked ``lm_head`` rows.

    ``rows`` = the candidates (in order), then T if it is neither a candidate nor E, then E if E
    is not the final hidden state N (whose logits are the model's own).
    """

    num_layers: int
    end: int
    candidates: tuple[int, ...]
    toxic: int | None
    rows: tuple[int, ...]
    toxic_row: int | None  # index into rows, END_ROW when T == E, None in DoLa mode
    end_row: int | None  # index into rows, None when E == N (use the model's logits)


def _hf_config(model: Any) -> Any:
    """A model's Hugging Face config (or the config itself, to check settings before loading)."""
    return getattr(model, "config", model)


def resolve_toxic_layer(model: Any, config: DDSCConfig) -> int | None:
    """T for this model: ``toxic_layer``, else ``profile``, else N - ``toxic_layer_from_end``,
    else the shipped default profile.

    ``model`` may be a model or its Hugging Face config.
    """
    if config.mode == "dola":
        return None
    num_layers = int(_hf_config(model).num_hidden_layers)
    if config.toxic_layer is not None:
        return check_toxic_layer(config.toxic_layer, num_layers)
    if config.profile is not None:
        toxic = check_profile(load_profile(config.profile), model, config.profile)
    elif config.toxic_layer_from_end is not None:
        toxic = num_layers - config.toxic_layer_from_end
    else:
        toxic = check_profile(load_default_profile(), model, "shipped with detox-ddsc")
    return check_toxic_layer(toxic, num_layers)


@dataclass(frozen=True)
class _ModelShape:
    """What a layer plan reads of a model: its Hugging Face config's shape fields."""

    model_type: str
    num_hidden_layers: int
    hidden_size: int | None
    vocab_size: int | None


def plan_layers(model: Any, config: DDSCConfig) -> LayerPlan:
    """Validate the layers and the toxic layer against ``model`` (or its Hugging Face config)
    and lay out the head rows.

    Built once per model shape and layer settings (and profile file version): a CLI call that
    checks the layers before loading, then decodes batch after batch, plans them once.
    """
    hf = _hf_config(model)
    shape = _ModelShape(
        model_type=str(getattr(hf, "model_type", "")),
        num_hidden_layers=int(hf.num_hidden_layers),
        hidden_size=getattr(hf, "hidden_size", None),
        vocab_size=getattr(hf, "vocab_size", None),
    )
    layers = config.layers if isinstance(config.layers, str) else tuple(config.layers)
    return _cached_plan(
        shape,
        layers,
        config.mode,
        config.toxic_layer,
        config.profile,
        None if config.profile is None else profile_file_key(config.profile),
        config.toxic_layer_from_end,
    )


@functools.lru_cache(maxsize=64)
def _cached_plan(
    shape: _ModelShape,
    layers: str | tuple[int, ...],
    mode: Mode,
    toxic_layer: int | None,
    profile: str | None,
    _profile_version: tuple[str, int, int] | None,
    toxic_layer_from_end: int | None,
) -> LayerPlan:
    config = DDSCConfig(
        layers=layers if isinstance(layers, str) else list(layers),
        mode=mode,
        toxic_layer=toxic_layer,
        profile=profile,
        toxic_layer_from_end=toxic_layer_from_end,
    )
    return build_plan(shape, config)


def build_plan(model: Any, config: DDSCConfig) -> LayerPlan:
    """``plan_layers`` without its cache (every call validates and lays out the rows)."""
    num_layers = int(_hf_config(model).num_hidden_layers)
    layers = parse_layers(config.layers, num_layers, mode=config.mode)
    end, candidates = layers[-1], tuple(layers[:-1])
    toxic = resolve_toxic_layer(model, config)
    rows = list(candidates)
    toxic_row: int | None = None
    if toxic is not None:
        if toxic == end:
            toxic_row = END_ROW
        elif toxic in candidates:
            toxic_row = candidates.index(toxic)
        else:
            toxic_row = len(rows)
            rows.append(toxic)
    end_row: int | None = None
    if end != num_layers:
        end_row = len(rows)
        rows.append(end)
    return LayerPlan(num_layers, end, candidates, toxic, tuple(rows), toxic_row, end_row)


def one_sided_scores(end: torch.Tensor, unit: torch.Tensor, config: DDSCConfig) -> torch.Tensor:
    """A one-sided contrast from the reference scores at weight 1 (``unit``, -inf off the head),
    on the head of n tokens (-inf elsewhere): ``penalty_only``: ``log p_E - w * max(0, log q_B +
    log n)``; ``boost_only``: ``log p_E + w * max(0, -log q_B - log n)``."""
    log_p = torch.log_softmax(end.float(), dim=-1)
    head = torch.isfinite(unit)
    log_q = torch.where(head, log_p - unit, torch.zeros_like(log_p))  # log q_B on the head
    size = head.sum(dim=-1, keepdim=True).clamp(min=1).to(log_p.dtype)
    excess = log_q + torch.log(size)  # > 0 where the contrast favours a token over uniform
    if config.boost_only:
        shifted = log_p + config.contrast_weight * torch.relu(-excess)
    else:
        shifted = log_p - config.contrast_weight * torch.relu(excess)
    return torch.where(head, shifted, unit)


def gate_contrast(
    end: torch.Tensor,
    scores: torch.Tensor,
    div_toxic: torch.Tensor,
    s: torch.Tensor,
    config: DDSCConfig,
) -> torch.Tensor:
    """``scores`` on the rows whose T-S divergence exceeds ``contrast_gate``, ``log p_E`` on the
    others (per row, on the device: no host synchronisation)."""
    divergence = div_toxic.gather(1, s[:, None])  # [B, 1]
    if config.divergence == "reference":
        divergence = divergence * end.shape[-1]
    return torch.where(
        divergence > config.contrast_gate, scores, torch.log_softmax(end.float(), -1)
    )


def final_norm(model: Any) -> torch.nn.Module:
    """The model's final norm (applied to early layers when ``early_norm`` is on)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    for name in ("norm", "ln_f", "final_layer_norm", "final_layernorm"):
        module = getattr(decoder, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise DetoxError(
        f"cannot find the final norm of this {type(model).__name__}", "drop --early-norm"
    )


class DDSCStepScorer:
    """Next-token scores of one DDSC/DoLa step; records the chosen H and S on the device."""

    output_hidden_states = True

    def __init__(self, model: Any, plan: LayerPlan, config: DDSCConfig) -> None:
        head = model.get_output_embeddings()
        if head is None or not hasattr(head, "weight"):
            raise DetoxError(
                f"{type(model).__name__} has no lm_head to read early layers with",
                "use a causal LM",
            )
        self.weight: torch.Tensor = head.weight
        self.bias: torch.Tensor | None = getattr(head, "bias", None)
        self.plan = plan
        self.config = config
        device = self.weight.device
        self.norm = final_norm(model) if config.early_norm else None
        # Early-norm applies to every row but the final hidden state (already normed).
        self.norm_rows = torch.tensor([r != plan.num_layers for r in plan.rows], device=device)
        self.candidate_layers = torch.tensor(plan.candidates, dtype=torch.long, device=device)
        self.h_steps: list[torch.Tensor] = []
        self.s_steps: list[torch.Tensor] = []
        self._head_out: torch.Tensor | None = None

    def head_logits(self, outputs: Any) -> torch.Tensor:
        """``lm_head`` of the planned rows at the last position: one matmul, ``[B, R, V]``.

        Without autograd the product is written into a buffer reused from step to step (a fresh
        ``[B, R, V]`` tensor each step costs the CPU page faults on tens of megabytes), so the
        result is only valid until the next call.
        """
        states = outputs.hidden_states
        stacked = torch.stack([states[i][:, -1] for i in self.plan.rows], dim=1)
        if self.norm is not None:
            stacked = torch.where(self.norm_rows[None, :, None], self.norm(stacked), stacked)
        if torch.is_grad_enabled():
            return torch.nn.functional.linear(stacked, self.weight, self.bias)
        shape = (*stacked.shape[:-1], self.weight.shape[0])
        out = self._head_out
        if (
            out is None
            or out.shape != shape
            or out.dtype != stacked.dtype
            or out.is_inference() != torch.is_inference_mode_enabled()
        ):
            out = self._head_out = stacked.new_empty(shape)
        torch.matmul(stacked, self.weight.T, out=out)
        return out if self.bias is None else out.add_(self.bias)

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        plan, config = self.plan, self.config
        rows = self.head_logits(outputs)
        end = logits if plan.end_row is None else rows[:, plan.end_row]
        cands = rows[:, : len(plan.candidates)]
        toxic: torch.Tensor | None = None
        if plan.toxic_row is not None:
            toxic = end if plan.toxic_row == END_ROW else rows[:, plan.toxic_row]
        selection = select_layers(end, cands, toxic, config.divergence)
        h, s = selection.h, selection.s
        if config.selection == "batch-mean":
            batch = end.shape[0]
            h = selection.div_end.mean(dim=0).argmax().expand(batch)
            if selection.div_toxic is not None:
                s = (selection.div_toxic[:, 1:].mean(dim=0).argmax() + 1).expand(batch)
        with_h = not (config.safety_only and toxic is not None)
        if config.penalty_only or config.boost_only:
            scores = one_sided_scores(
                end, contrast_scores(end, cands, h, toxic, s, config.alpha, 1.0, with_h), config
            )
        else:
            scores = contrast_scores(
                end, cands, h, toxic, s, config.alpha, config.contrast_weight, with_h
            )
        if config.contrast_temperature != 1.0:
            scores = scores / config.contrast_temperature
        if config.contrast_gate > 0 and selection.div_toxic is not None and s is not None:
            scores = gate_contrast(end, scores, selection.div_toxic, s, config)
        self.h_steps.append(self.candidate_layers[h])
        if s is not None:
            self.s_steps.append(self.candidate_layers[s])
        return scores

    def layer_trace(self, result: DecodeOutput) -> list[list[tuple[int, int | None]]]:
        """``(H, S)`` per row and generated token, copied to the host once."""
        batch = len(result.texts)
        if not self.h_steps:
            return [[] for _ in range(batch)]
        h_rows: list[list[int]] = torch.stack(self.h_steps, dim=1).tolist()
        s_rows: list[list[int | None]]
        if self.s_steps:
            s_rows = torch.stack(self.s_steps, dim=1).tolist()
        else:
            s_rows = [[None] * len(self.h_steps) for _ in range(batch)]
        trace = []
        for row, (ids, reason) in enumerate(zip(result.token_ids, result.stopped, strict=True)):
            steps = len(ids) + (1 if reason == "eos" else 0)
            trace.append(list(zip(h_rows[row][:steps], s_rows[row][:steps], strict=True)))
        return trace


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], config: DDSCConfig) -> DDSCOutput:
    """Continue ``prompts`` with DDSC (or DoLa) decoding; see the module docstring."""
    plan = plan_layers(model, config)
    scorer = DDSCStepScorer(model, plan, config)
    result = decode(model, tokenizer, list(prompts), config.decode, scorer)
    return DDSCOutput(
        texts=result.texts,
        layers=scorer.layer_trace(result),
        stopped=result.stopped,
        token_ids=result.token_ids,
    )
