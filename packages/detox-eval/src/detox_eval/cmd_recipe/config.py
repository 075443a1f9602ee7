"""The recipe's settings and its run folder layout (the one place that names its files).

``RecipeConfig`` nests the real configs of each stage: ``SplitConfig``, ``SynthesisConfig``,
``CMDTrainConfig`` and ``RtpSettings``. The paths that tie them together (the synthesized chains
the trainer reads, the adapter the evaluation loads, the eval prompts) are set by
``recipe_config`` from ``RecipeLayout`` and checked on validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from detox_cmd.synthesis.config import TRAIN_FILE, SynthesisConfig
from detox_cmd.training.config import CMDTrainConfig
from detox_eval.cmd_recipe.split import EVAL_PROMPTS_FILE, TRAIN_PROMPTS_FILE, SplitConfig
from detox_eval.rtp.settings import RtpSettings

RecipeStage = Literal["split", "synthesize", "train", "eval", "report"]
STAGES: tuple[RecipeStage, ...] = ("split", "synthesize", "train", "eval", "report")
RECIPE_METHODS = ("vanilla", "cmd", "cmd+ddsc")


class RecipeLayout:
    """The files of a recipe run folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @property
    def manifest(self) -> Path:
        """``recipe.json``: settings, versions, stage status and counts."""
        return self.root / "recipe.json"

    @property
    def report(self) -> Path:
        """``report.md``: the comparison table and links to the plots."""
        return self.root / "report.md"

    @property
    def split(self) -> Path:
        """The folder of the two prompt files."""
        return self.root / "split"

    @property
    def train_prompts(self) -> Path:
        """The prompts the chains are synthesized from."""
        return self.split / TRAIN_PROMPTS_FILE

    @property
    def eval_prompts(self) -> Path:
        """The held-out prompts of the evaluation."""
        return self.split / EVAL_PROMPTS_FILE

    @property
    def synthesis(self) -> Path:
        """A ``detox cmd synthesize`` folder."""
        return self.root / "synthesis"

    @property
    def chains(self) -> Path:
        """The synthesized chains (the trainer's data)."""
        return self.synthesis / TRAIN_FILE

    @property
    def train(self) -> Path:
        """A ``detox cmd train`` folder."""
        return self.root / "train"

    @property
    def adapter(self) -> Path:
        """The trained adapter (``train/adapter``)."""
        return self.train / "adapter"

    @property
    def eval(self) -> Path:
        """A ``detox eval rtp`` folder."""
        return self.root / "eval"


class RecipeConfig(BaseModel):
    """Every setting of a recipe run; saved in ``recipe.json`` and compared on resume."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompts: Path
    split: SplitConfig
    synthesis: SynthesisConfig
    train: CMDTrainConfig
    eval: RtpSettings

    @model_validator(mode="after")
    def _linked(self) -> RecipeConfig:
        if self.train.model != self.synthesis.model or self.eval.model != self.synthesis.model:
            raise ValueError("synthesis, training and evaluation must use the same base model")
        if not set(self.eval.methods) <= set(RECIPE_METHODS):
            raise ValueError(f"recipe methods are among {', '.join(RECIPE_METHODS)}")
        return self

    def comparable(self) -> dict[str, Any]:
        """The settings a resumed run must share (the trainer's own resume flag aside)."""
        data = self.model_dump(mode="json")
        data["train"].pop("resume", None)
        return data


def recipe_config(
    prompts: Path,
    out: Path,
    *,
    split: SplitConfig,
    synthesis: SynthesisConfig,
    train: dict[str, Any],
    eval_settings: dict[str, Any],
) -> RecipeConfig:
    """Build the nested config of a run in ``out``: the stage configs get the layout's paths.

    ``train`` holds ``CMDTrainConfig`` fields other than the paths; ``eval_settings`` holds
    ``RtpSettings`` fields other than ``prompts``, ``methods`` and ``model`` (its ``method``
    gets the trained adapter).
    """
    layout = RecipeLayout(out)
    train_config = CMDTrainConfig.model_validate(
        {
            **train,
            "model": synthesis.model,
            "data_path": layout.chains,
            "output_dir": layout.train,
        }
    )
    settings = RtpSettings.model_validate(
        {
            "methods": RECIPE_METHODS,
            "ppl_model": synthesis.model,  # perplexity under the base model
            **eval_settings,
            "prompts": str(layout.eval_prompts),
        }
    )
    method = settings.method.model_copy(
        update={"cmd": settings.method.cmd.model_copy(update={"adapter": str(layout.adapter)})}
    )
    settings = settings.model_copy(update={"method": method, "model": synthesis.model})
    return RecipeConfig(
        prompts=prompts.expanduser().resolve(),
        split=split,
        synthesis=synthesis,
        train=train_config,
        eval=settings,
    )
