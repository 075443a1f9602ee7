"""A PNG of the training curves (losses and learning rate per optimizer step)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from detox_cmd.training.records import LossRecord


def plot_losses(records: Sequence[LossRecord], path: str | Path) -> Path:
    """Draw LM, contrastive and total loss (top) and the learning rate (bottom) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = [r.step for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(steps, [r.lm for r in records], label="LM")
    cl = [(r.step, r.cl) for r in records if r.cl is not None]
    if cl:
        top.plot([s for s, _ in cl], [v for _, v in cl], label="contrastive")
    top.plot(steps, [r.total for r in records], label="total", linestyle="--")
    top.set_ylabel("loss")
    top.legend()
    top.grid(alpha=0.3)
    bottom.plot(steps, [r.lr for r in records], color="tab:gray")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("optimizer step")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
