"""The settings of an RTP evaluation run and the run manifest (``run.json``) kept beside it.

A run directory holds ``run.json`` (settings, shard, prompt-toxicity source, wall time per
method, completion flag), ``generations.jsonl`` (every sample with its score) and, for an
unsharded or merged run, ``report.json``, ``report.md`` and the plots. A rerun with the same
settings resumes; a rerun with different settings is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json

METHOD_NAMES = ("vanilla", "ddsc", "cmd", "cmd+ddsc")
BASELINE_METHOD = "vanilla"
MANIFEST_NAME = "run.json"
GENERATIONS_NAME = "generations.jsonl"
PROMPT_SCORES_NAME = "prompt_scores.jsonl"


class RtpSettings(BaseModel):
    """Everything that determines the generations and scores of an RTP evaluation."""

    model_config = ConfigDict(frozen=True)

    prompts: str
    methods: tuple[str, ...] = ("vanilla", "ddsc")
    model: str = "default"
    adapter: str | None = None
    ddsc_layers: str | None = None
    ddsc_toxic_layer: int | None = Field(None, ge=0)
    samples: int = Field(25, ge=1)
    max_new_tokens: int = Field(20, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)
    scorer: str = "profanity"
    ppl_model: str = "default"
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    threshold: float = 0.5


class Shard(BaseModel):
    """Shard ``index`` (0-based) of ``count``."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1)

    @property
    def dirname(self) -> str:
        """The sub-directory a shard writes to: ``shard-I-of-N``."""
        return f"shard-{self.index}-of-{self.count}"


class RunManifest(BaseModel):
    """``run.json``: the settings of a run directory and how far it got."""

    settings: RtpSettings
    shard: Shard = Shard()
    scorer: str | None = None  # "name@version" of the scorer that scored the samples
    prompt_toxicity_source: str | None = None  # "file", or "name@version" of the prompt scorer
    wall_time_s: dict[str, float] = Field(default_factory=dict)
    complete: bool = False

    def save(self, directory: Path) -> None:
        """Write ``run.json`` atomically."""
        atomic_write_json(directory / MANIFEST_NAME, self.model_dump(mode="json"))


def load_manifest(directory: Path) -> RunManifest | None:
    """The manifest of ``directory``, or None when it has none yet."""
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return RunManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise DetoxError(f"{path} is not a valid run manifest", "use a fresh --out") from exc


def settings_differences(a: RtpSettings, b: RtpSettings) -> list[str]:
    """Human-readable ``field: a != b`` lines for each setting that differs."""
    left: dict[str, Any] = a.model_dump()
    right: dict[str, Any] = b.model_dump()
    return [f"{k}: {left[k]!r} != {right[k]!r}" for k in left if left[k] != right[k]]


def check_same_settings(expected: RtpSettings, found: RtpSettings, where: Path) -> None:
    """Refuse to mix runs whose settings differ."""
    diff = settings_differences(expected, found)
    if diff:
        raise DetoxError(
            f"{where} holds a run with other settings ({'; '.join(diff)})",
            "use the same options or another --out directory",
        )
