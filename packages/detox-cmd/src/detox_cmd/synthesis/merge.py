"""Combining the outputs of several shards.

``train.jsonl`` files are concatenated in the order given (a prompt id appearing twice is an
error: the shards overlap); the manifests' stage counts and drop reasons are added up. Plain
``cat shard*/train.jsonl > train.jsonl`` gives the same training file without the manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from detox_cmd.synthesis.config import MANIFEST_FILE, TRAIN_FILE
from detox_cmd.synthesis.manifest import Manifest, StageCounts, load_manifest
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, atomic_write_text, iter_jsonl
from detox_core.locking import locks_folder


def _merge_counts(parts: Sequence[StageCounts]) -> StageCounts:
    reasons: Counter[str] = Counter()
    details: Counter[str] = Counter()
    for part in parts:
        reasons.update(part.reasons)
        details.update(part.details)
    return StageCounts(
        entering=sum(p.entering for p in parts),
        kept=sum(p.kept for p in parts),
        dropped=sum(p.dropped for p in parts),
        reasons=dict(sorted(reasons.items())),
        details=dict(details),
        settings=parts[0].settings,
        complete=all(p.complete for p in parts),
    )


@locks_folder("out_dir")
def merge_outputs(
    shard_dirs: Sequence[Path], out_dir: Path, order: Sequence[str] | None = None
) -> Manifest:
    """Concatenate the shards' ``train.jsonl`` into ``out_dir`` and add up their manifests.

    ``order`` (prompt ids) puts the chains in that order, as a single run writes them.
    """
    if not shard_dirs:
        raise DetoxError("no shard directories given", "pass the --out directories of the shards")
    manifests: list[Manifest] = []
    lines: list[tuple[str, str]] = []
    seen: dict[str, Path] = {}
    for shard_dir in shard_dirs:
        manifest = load_manifest(shard_dir)
        if manifest is None or not (shard_dir / TRAIN_FILE).exists():
            raise DetoxError(
                f"{shard_dir} holds no finished synthesis run",
                "finish the synthesis run there first",
            )
        manifests.append(manifest)
        for number, obj in iter_jsonl(shard_dir / TRAIN_FILE):
            ident = str(obj.get("id"))
            if ident in seen:
                raise DetoxError(
                    f"{shard_dir / TRAIN_FILE}:{number}: id {ident!r} is also in {seen[ident]}",
                    "merge each shard once; shards of one job never overlap",
                )
            seen[ident] = shard_dir / TRAIN_FILE
            lines.append((ident, json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"))
    stages: dict[str, StageCounts] = {}
    for name in manifests[0].stages:
        parts = [m.stages[name] for m in manifests if name in m.stages]
        if len({repr(sorted(p.settings.items())) for p in parts}) > 1:
            raise DetoxError(
                f"the shards ran the '{name}' stage with different settings",
                "merge only shards of one job",
            )
        stages[name] = _merge_counts(parts)
    merged = Manifest(
        updated=datetime.now(UTC).isoformat(timespec="seconds"),
        shards=[m.shard or str(d) for m, d in zip(manifests, shard_dirs, strict=True)],
        config={**manifests[0].config, "shard": None},
        packages=manifests[0].packages,
        scorer=manifests[0].scorer,
        scorers=sorted({s for m in manifests for s in m.scorers}),
        detector=next((m.detector for m in manifests if m.detector), None),
        stages=stages,
    )
    if order is not None:
        position = {ident: i for i, ident in enumerate(order)}
        lines.sort(key=lambda item: position.get(item[0], len(position)))
    atomic_write_text(out_dir / TRAIN_FILE, "".join(line for _, line in lines))
    atomic_write_json(out_dir / MANIFEST_FILE, merged.model_dump(mode="json"))
    return merged
