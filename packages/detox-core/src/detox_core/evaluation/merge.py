"""Merge the shards of an evaluation (``detox eval merge``) into one run directory."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.evaluation.settings import (
    GENERATIONS_NAME,
    MANIFEST_NAME,
    RunManifest,
    Shard,
    check_same_settings,
    load_manifest,
)
from detox_core.evaluation.store import read_generations, write_generations
from detox_core.records import Generation

SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)$")


def expand_run_dirs(paths: Sequence[Path]) -> list[Path]:
    """Run directories: each path itself, or the ``shard-I-of-N`` folders inside it."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise DetoxError(f"not a directory: {path}", "pass shard directories")
        if (path / MANIFEST_NAME).exists():
            found.append(path)
            continue
        shards = sorted(p for p in path.iterdir() if p.is_dir() and SHARD_DIR.match(p.name))
        if not shards:
            raise DetoxError(
                f"{path} holds no {MANIFEST_NAME} and no shard-I-of-N folders",
                "pass the directories written by `detox eval rtp --shard I/N`",
            )
        found.extend(shards)
    return found


def _loaded(path: Path) -> RunManifest:
    manifest = load_manifest(path)
    if manifest is None:
        raise DetoxError(f"{path} holds no {MANIFEST_NAME}", "pass shard directories")
    if not manifest.complete:
        raise DetoxError(
            f"{path} is not finished", "rerun its `detox eval rtp ... --shard` command to resume"
        )
    return manifest


def merge_runs(paths: Sequence[Path], out: Path) -> tuple[RunManifest, list[Generation]]:
    """Check that the shards belong together and cover every index; write their union to ``out``."""
    dirs = expand_run_dirs(paths)
    manifests = [(d, _loaded(d)) for d in dirs]
    first_dir, first = manifests[0]
    for where, other in manifests[1:]:
        check_same_settings(first.settings, other.settings, where)
        for field in ("scorer", "prompt_toxicity_source"):
            a, b = getattr(first, field), getattr(other, field)
            if a != b:
                raise DetoxError(
                    f"{where} differs from {first_dir} in {field} ({b!r} != {a!r})",
                    "merge shards of one evaluation",
                )
        if other.shard.count != first.shard.count:
            raise DetoxError(
                f"{where} is one of {other.shard.count} shards, {first_dir} one of "
                f"{first.shard.count}",
                "merge shards of one evaluation",
            )
    count = first.shard.count
    indices = sorted(m.shard.index for _, m in manifests)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise DetoxError(
            f"shards do not cover 0..{count - 1} once each (missing {missing}, repeated {repeated})",
            "pass every shard directory exactly once",
        )
    previous = load_manifest(out)
    if previous is not None and previous.shard.count == 1:
        check_same_settings(first.settings, previous.settings, out)
    generations: list[Generation] = []
    seen: set[tuple[str, str, int]] = set()
    wall: dict[str, float] = {}
    for where, manifest in sorted(manifests, key=lambda dm: dm[1].shard.index):
        for gen in read_generations(where / GENERATIONS_NAME):
            if gen.key in seen:
                raise DetoxError(f"{where}: sample {gen.key} is in two shards", "check the shards")
            seen.add(gen.key)
            generations.append(gen)
        for method, seconds in manifest.wall_time_s.items():
            wall[method] = wall.get(method, 0.0) + seconds
    merged = first.model_copy(update={"shard": Shard(), "wall_time_s": wall, "complete": True})
    out.mkdir(parents=True, exist_ok=True)
    write_generations(out / GENERATIONS_NAME, generations)
    merged.save(out)
    return merged, generations
