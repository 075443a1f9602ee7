"""Merge the shard folders of a data-parallel evaluation into one run folder (rank 0 does it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.records import Generation
from detox_eval.rtp.settings import RtpManifest, RtpSettings, adds_runs
from detox_eval.rtp.store import read_generations, write_generations
from detox_eval.run_folder import (
    GENERATIONS_NAME,
    MANIFEST_NAME,
    Shard,
    check_same_settings,
    load_manifest,
)


def _loaded(path: Path) -> RtpManifest:
    manifest = load_manifest(path, RtpSettings)
    if manifest is None:
        raise DetoxError(f"{path} holds no {MANIFEST_NAME}", "pass the shard folders of one run")
    if not manifest.complete:
        raise DetoxError(f"{path} is not finished", "rerun the same command to resume it")
    return manifest


def merge_runs(dirs: Sequence[Path], out: Path) -> tuple[RtpManifest, list[Generation]]:
    """Check that the shards belong together and cover every index; write their union to ``out``."""
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
    previous = load_manifest(out, RtpSettings)
    grows = previous is not None and adds_runs(first.settings, previous.settings)
    if previous is not None and previous.shard.count == 1 and not grows:
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
