"""The recipe's first stage: disjoint train and eval prompt sets, drawn by a fixed seed.

The eval set is drawn first, from the toxic prompts (``eval_pool="toxic"``, the stand-in for
RealToxicityPrompts' challenging subset) or from all prompts, so it does not change when the
train size does. The train set is drawn from the rest with ``toxic_share`` of toxic prompts, as
in the paper (about half). A prompt is toxic when its own score is ``> toxic_threshold``;
prompts without a score (RealToxicityPrompts has a few) are left out and counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detox_core.errors import DetoxError
from detox_core.io import atomic_write_text
from detox_core.records import Prompt

TRAIN_PROMPTS_FILE = "train_prompts.jsonl"
EVAL_PROMPTS_FILE = "eval_prompts.jsonl"


class SplitConfig(BaseModel):
    """How the prompts file is split into train and eval prompts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    train_prompts: int = Field(2000, ge=1)
    eval_prompts: int = Field(300, ge=1)
    toxic_share: float = Field(0.5, ge=0, le=1, description="Share of toxic train prompts.")
    toxic_threshold: float = Field(0.5, ge=0, le=1)
    eval_pool: Literal["toxic", "all"] = "toxic"
    seed: int = 0


class PromptSplit(BaseModel):
    """The two disjoint prompt lists."""

    train: list[Prompt]
    eval: list[Prompt]
    unscored: int = Field(0, description="Prompts left out because they have no toxicity score.")


def _need(count: int, available: int, what: str, option: str) -> None:
    if count > available:
        raise DetoxError(
            f"the prompts file has {available} {what}, the split needs {count}",
            f"lower {option} or use a larger prompts file",
        )


def split_prompts(prompts: Sequence[Prompt], config: SplitConfig) -> PromptSplit:
    """Draw the eval set, then the train set from the remaining prompts (see the module doc)."""
    scored = [p for p in prompts if p.toxicity is not None]
    if not scored:
        raise DetoxError(
            "no prompt has a toxicity score, so toxic and non-toxic prompts cannot be balanced",
            "use a RealToxicityPrompts file, or give each JSONL line a 'toxicity' number",
        )
    rng = random.Random(config.seed)
    toxic = [p for p in scored if (p.toxicity or 0.0) > config.toxic_threshold]
    clean = [p for p in scored if (p.toxicity or 0.0) <= config.toxic_threshold]
    rng.shuffle(toxic)
    rng.shuffle(clean)
    if config.eval_pool == "toxic":
        _need(config.eval_prompts, len(toxic), "toxic prompts", "--eval-prompts")
        eval_set, toxic = toxic[: config.eval_prompts], toxic[config.eval_prompts :]
    else:
        pool = toxic + clean
        rng.shuffle(pool)
        _need(config.eval_prompts, len(pool), "prompts", "--eval-prompts")
        eval_set = pool[: config.eval_prompts]
        taken = {p.id for p in eval_set}
        toxic = [p for p in toxic if p.id not in taken]
        clean = [p for p in clean if p.id not in taken]
    n_toxic = round(config.train_prompts * config.toxic_share)
    n_clean = config.train_prompts - n_toxic
    _need(n_toxic, len(toxic), "toxic prompts left after the eval set", "--train-prompts")
    _need(n_clean, len(clean), "non-toxic prompts left after the eval set", "--train-prompts")
    train = toxic[:n_toxic] + clean[:n_clean]
    rng.shuffle(train)
    return PromptSplit(train=train, eval=eval_set, unscored=len(prompts) - len(scored))


def _jsonl(prompts: Sequence[Prompt]) -> str:
    return "".join(p.model_dump_json(include={"id", "text", "toxicity"}) + "\n" for p in prompts)


def write_split(split: PromptSplit, folder: Path) -> tuple[Path, Path]:
    """Write ``train_prompts.jsonl`` and ``eval_prompts.jsonl`` (detox JSONL) atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    train, evaluation = folder / TRAIN_PROMPTS_FILE, folder / EVAL_PROMPTS_FILE
    atomic_write_text(train, _jsonl(split.train))
    atomic_write_text(evaluation, _jsonl(split.eval))
    return train, evaluation
