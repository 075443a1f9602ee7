"""The CMD contrastive objective (METHODS §2.7): pooled representations and InfoNCE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from detox_cmd.training.config import Pooling


def pool_hidden(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """One vector per row of ``hidden [B, T, D]``: the mean over its tokens.

    ``masked`` averages the real tokens only (``mask [B, T]``); ``unmasked`` averages every
    position, padding included, as the reference code does.
    """
    if pooling == "unmasked":
        return hidden.mean(dim=1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def info_nce(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``-log(exp(cos(a, pos)/t) / sum_{z in pos+negs} exp(cos(a, z)/t))`` for one group.

    ``anchor`` and ``positive`` are ``[D]``, ``negatives`` is ``[K, D]`` with K >= 1.
    """
    candidates = torch.cat([positive.unsqueeze(0), negatives], dim=0)
    sims = F.cosine_similarity(anchor.unsqueeze(0), candidates, dim=-1) / temperature
    return -torch.log_softmax(sims, dim=0)[0]


def contrastive_loss(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    owners: Sequence[int],
    temperature: float,
) -> torch.Tensor | None:
    """Mean InfoNCE over groups: ``anchors``/``positives`` ``[G, D]``, ``negatives [M, D]``.

    ``owners[m]`` is the group of negative ``m``. Groups without a negative are skipped;
    ``None`` when no group has one.
    """
    owner = torch.tensor(list(owners), dtype=torch.long, device=negatives.device)
    losses = []
    for group in range(anchors.shape[0]):
        negs = negatives[owner == group]
        if negs.shape[0] == 0:
            continue
        losses.append(info_nce(anchors[group], positives[group], negs, temperature))
    if not losses:
        return None
    return torch.stack(losses).mean()
