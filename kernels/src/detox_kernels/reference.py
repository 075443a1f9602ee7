"""Plain-torch references for the DDSC kernels (METHODS §1.3). These define the semantics.

Shapes: ``end`` and ``toxic`` are ``[B, V]`` logits, ``cands`` is ``[B, K, V]`` (candidate layers'
early-exit logits). Divergences are computed in float32 whatever the input dtype.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

Divergence = Literal["reference", "jsd"]


class LayerSelection(NamedTuple):
    """Chosen candidate indices per row and the divergences behind them."""

    h: torch.Tensor  # [B] int64, index into the candidates: argmax_k D(end, cand_k)
    s: torch.Tensor | None  # [B] int64, argmax_{k >= 1} D(toxic, cand_k); None without toxic
    div_end: torch.Tensor  # [B, K] float32
    div_toxic: torch.Tensor | None  # [B, K] float32


def _kl_terms(m: torch.Tensor, log_m: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    # m * (log m - log p), with the convention 0 * anything = 0.
    return torch.where(m > 0, m * (log_m - log_p), torch.zeros_like(m))


def layer_divergence_torch(
    a: torch.Tensor, b: torch.Tensor, divergence: Divergence = "reference"
) -> torch.Tensor:
    """Divergence between logits ``a`` and ``b`` along the last axis (broadcasting).

    ``reference`` (DoLa/DDSC code): ``0.5 * (mean_V M (log M - log P) + mean_V M (log M - log Q))``
    with ``M = (P + Q) / 2``; this is KL(M||P) + KL(M||Q) averaged over the vocabulary.
    ``jsd``: the true Jensen-Shannon divergence ``0.5 * (KL(P||M) + KL(Q||M))`` (summed, nats),
    with ``log M = logaddexp(log P, log Q) - log 2`` so that it stays finite (at most ``log 2``)
    for peaked logits, where ``M`` itself underflows to 0.
    """
    log_p = torch.log_softmax(a.float(), dim=-1)
    log_q = torch.log_softmax(b.float(), dim=-1)
    p, q = log_p.exp(), log_q.exp()
    if divergence == "reference":
        m = 0.5 * (p + q)
        log_m = torch.log(m)
        return 0.5 * (_kl_terms(m, log_m, log_p).mean(-1) + _kl_terms(m, log_m, log_q).mean(-1))
    if divergence == "jsd":
        log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
        return 0.5 * (_kl_terms(p, log_p, log_m).sum(-1) + _kl_terms(q, log_q, log_m).sum(-1))
    raise ValueError(f"unknown divergence {divergence!r}")


def select_layers_torch(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None = None,
    divergence: Divergence = "reference",
) -> LayerSelection:
    """H = argmax_k D(end, cand_k); S = argmax_{k>=1} D(toxic, cand_k) (first max on ties)."""
    div_end = layer_divergence_torch(end[:, None, :], cands, divergence)
    h = div_end.argmax(dim=-1)
    if toxic is None:
        return LayerSelection(h, None, div_end, None)
    div_toxic = layer_divergence_torch(toxic[:, None, :], cands, divergence)
    if cands.shape[1] < 2:
        raise ValueError("the safe layer needs at least two candidate layers")
    s = div_toxic[:, 1:].argmax(dim=-1) + 1
    return LayerSelection(h, s, div_end, div_toxic)


def check_contrast_terms(toxic: torch.Tensor | None, s: torch.Tensor | None, with_h: bool) -> None:
    """The contrast needs S with a toxic row, and some base term."""
    if toxic is not None and s is None:
        raise ValueError("the DDSC contrast needs the safe layer index s")
    if toxic is None and not with_h:
        raise ValueError("the safety-only contrast (with_h=False) needs the toxic layer")


def contrast_scores_torch(
    end: torch.Tensor,
    cands: torch.Tensor,
    h: torch.Tensor,
    toxic: torch.Tensor | None = None,
    s: torch.Tensor | None = None,
    alpha: float = 0.1,
    weight: float = 1.0,
    with_h: bool = True,
) -> torch.Tensor:
    """APC head mask and contrast score ``[B, V]`` float32.

    head = {x : p_E(x) >= alpha * max p_E}; base logits ``z_B = z_H + z_T - z_S`` (DDSC),
    ``z_T - z_S`` (``with_h=False``: the safety-only contrast) or ``z_H`` (DoLa, when ``toxic``
    is None); ``log q_B`` is the log-softmax of ``z_B`` over the head (the reference sets non-head
    entries to -1000 first); the score is ``log p_E - weight * log q_B`` on the head and ``-inf``
    elsewhere. ``weight=1`` is the reference formula; ``weight=0`` is plain decoding restricted
    to the head.
    """
    check_contrast_terms(toxic, s, with_h)
    rows = torch.arange(end.shape[0], device=end.device)
    log_p_end = torch.log_softmax(end.float(), dim=-1)
    threshold = log_p_end.max(dim=-1, keepdim=True).values + math.log(alpha)
    head = log_p_end >= threshold
    base = cands[rows, h].float() if with_h else torch.zeros_like(log_p_end)
    if toxic is not None and s is not None:
        base = base + toxic.float() - cands[rows, s].float()
    base = base.masked_fill(~head, float("-inf"))
    log_q_base = base - torch.logsumexp(base, dim=-1, keepdim=True)
    score = log_p_end - weight * log_q_base
    return score.masked_fill(~head, float("-inf"))
