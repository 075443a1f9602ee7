"""DDSC option types (plain ``Literal`` aliases), free of torch so that the CLI's options and help
are built without it; the modules that use them re-export them."""

from __future__ import annotations

from typing import Literal

Divergence = Literal["reference", "jsd"]
Selection = Literal["per-row", "batch-mean"]
Mode = Literal["ddsc", "dola"]
Contrast = Literal["ddsc", "dola"]
ToxicMode = Literal["dynamic", "static"]
ScoreNorm = Literal["vocab", "head"]
Clock = Literal["wall", "cpu"]
Preset = Literal["auto", "faithful", "diverse"]

__all__ = [
    "Clock",
    "Contrast",
    "Divergence",
    "Mode",
    "Preset",
    "ScoreNorm",
    "Selection",
    "ToxicMode",
]
