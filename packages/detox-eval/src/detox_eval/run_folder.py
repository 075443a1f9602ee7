"""The run folder shared by every evaluation (RealToxicityPrompts and SafeEdit).

A run folder holds ``run.json`` (the manifest: task, settings, shard, scorer, package versions,
wall time per method, completion flag), ``generations.jsonl`` (appended as samples are decoded,
resumable), and, for a finished unsharded run, ``report.json``, ``report.md`` and the plots. A
rerun with the same settings resumes; a rerun with other settings is refused, unless nothing was
generated yet (e.g. after a typo in an option). Processes of one data-parallel run write
``shard-I-of-N`` folders inside it, and rank 0 merges them into the run folder itself.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, atomic_write_text
from detox_core.parallel import shard_dirname

MANIFEST_NAME = "run.json"
GENERATIONS_NAME = "generations.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PACKAGES = ("detox-core", "detox-ddsc", "detox-cmd", "detox-eval", "torch", "transformers")

S = TypeVar("S", bound=BaseModel)


class Shard(BaseModel):
    """Shard ``index`` (0-based) of ``count``: one process's share of a data-parallel run."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1)

    @property
    def dirname(self) -> str:
        """The sub-folder a shard writes to: ``shard-I-of-N``."""
        return shard_dirname(self.index, self.count)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a run's results."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


class RunManifest(BaseModel, Generic[S]):
    """``run.json``: the settings of a run folder and how far it got."""

    task: str
    settings: S
    shard: Shard = Shard()
    scorer: str | None = None  # "name@version" of the scorer (or judge) of the samples
    prompt_toxicity_source: str | None = None  # RTP: "file" or the prompt scorer's name@version
    versions: dict[str, str] = Field(default_factory=package_versions)
    wall_time_s: dict[str, float] = Field(default_factory=dict)
    complete: bool = False

    def save(self, directory: Path) -> None:
        """Write ``run.json`` atomically."""
        atomic_write_json(directory / MANIFEST_NAME, self.model_dump(mode="json"))

    def add_time(self, method: str, seconds: float) -> None:
        """Charge ``seconds`` of generation to ``method``."""
        self.wall_time_s[method] = self.wall_time_s.get(method, 0.0) + seconds


def load_manifest(directory: Path, settings_type: type[S]) -> RunManifest[S] | None:
    """The manifest of ``directory``, or None when it has none yet."""
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return RunManifest[settings_type].model_validate_json(  # type: ignore[valid-type]
            path.read_text(encoding="utf-8")
        )
    except ValidationError as exc:
        raise DetoxError(
            f"{path} is not a run manifest of these settings", "use a fresh --out"
        ) from exc


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def settings_differences(a: BaseModel, b: BaseModel) -> list[str]:
    """``field.sub: a != b`` lines for each (nested) setting that differs."""
    left: dict[str, Any] = {}
    right: dict[str, Any] = {}
    _flatten("", a.model_dump(mode="json"), left)
    _flatten("", b.model_dump(mode="json"), right)
    keys = list(left) + [k for k in right if k not in left]
    return [
        f"{k}: {left.get(k)!r} != {right.get(k)!r}" for k in keys if left.get(k) != right.get(k)
    ]


def check_same_settings(expected: BaseModel, found: BaseModel, where: Path) -> None:
    """Refuse to mix runs whose settings differ."""
    diff = settings_differences(expected, found)
    if diff:
        raise DetoxError(
            f"{where} holds a run with other settings ({'; '.join(diff)})",
            "use the same options or another --out folder",
        )


def open_run(
    directory: Path,
    task: str,
    settings: S,
    shard: Shard | None = None,
    extends: Callable[[S, S], bool] | None = None,
) -> RunManifest[S]:
    """The manifest of a run folder: resumed when its settings match, refused when they differ
    (unless nothing was generated yet, or ``extends(new, stored)`` says the new settings only add
    work to the stored ones), new otherwise. Writes it before returning."""
    shard = shard or Shard()
    manifest = load_manifest(directory, type(settings))
    generations = directory / GENERATIONS_NAME
    started = generations.exists() and generations.stat().st_size > 0
    if manifest is not None and started and manifest.task != task:
        raise DetoxError(
            f"{directory} holds a {manifest.task} run, not {task}", "use another --out folder"
        )
    if manifest is None or not started:  # nothing generated yet: (re)start with these settings
        manifest = RunManifest[Any](task=task, settings=settings, shard=shard)
    else:
        if extends is not None and extends(settings, manifest.settings):
            manifest.settings = settings  # more runs in the same folder; the done ones stay
            manifest.complete = False
        check_same_settings(settings, manifest.settings, directory)
        if manifest.shard != shard:
            raise DetoxError(
                f"{directory} holds shard {manifest.shard.dirname}, not {shard.dirname}",
                "use another --out folder",
            )
    directory.mkdir(parents=True, exist_ok=True)
    manifest.save(directory)
    return manifest


def write_report_files(directory: Path, report: BaseModel, markdown: str) -> None:
    """Write ``report.json`` and ``report.md`` atomically."""
    atomic_write_json(directory / REPORT_JSON, report.model_dump(mode="json"))
    atomic_write_text(directory / REPORT_MD, markdown)


def shard_complete(directory: Path, settings: BaseModel) -> bool:
    """True when ``directory`` holds a finished run (or shard) with these settings."""
    try:
        manifest = load_manifest(directory, type(settings))
    except (DetoxError, OSError):
        return False  # being written, or from another run: not done
    if manifest is None or not manifest.complete:
        return False
    return not settings_differences(manifest.settings, settings)
