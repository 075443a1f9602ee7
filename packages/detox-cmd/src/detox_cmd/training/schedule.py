"""The learning-rate schedule: linear warmup, then cosine decay (METHODS §2.7).

Unlike transformers' ``get_cosine_schedule_with_warmup``, the first optimizer step does not run
at learning rate 0: warmup step ``k`` (0-based) uses ``(k + 1) / (warmup + 1)`` of the peak, and
the last step stays above 0. accelerate steps a prepared scheduler once per process per optimizer
step, so the factor is computed from ``calls // processes``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def lr_factor(step: int, warmup: int, total: int) -> float:
    """The share of the peak learning rate used by optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_cosine(
    optimizer: Any, warmup: int, total: int, processes: int = 1
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following ``lr_factor`` when stepped ``processes`` times per step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda calls: lr_factor(calls // processes, warmup, total)
    )
