"""Synthesis as a data-parallel job (``accelerate launch ... cmd synthesize``).

Each process takes the prompts of its shard (positions ``p % N == rank``, as ``--shard``) into
``OUT/shard-I-of-N/``; rank 0 waits until every shard has assembled its chains, then merges them
into ``OUT`` with the chains in prompt order. With ``batch_size`` 1 (the default) every record's
seed depends only on its prompt, so the result equals a single-process run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detox_cmd.synthesis.components import Components
from detox_cmd.synthesis.config import TRAIN_FILE, SynthesisConfig
from detox_cmd.synthesis.manifest import Manifest, load_manifest
from detox_cmd.synthesis.merge import merge_outputs
from detox_cmd.synthesis.pipeline import select_prompts, synthesize
from detox_core.parallel import ProcessGroup
from detox_core.records import Prompt


def shard_config(config: SynthesisConfig, group: ProcessGroup) -> SynthesisConfig:
    """The settings of this process's shard."""
    return config.model_copy(update={"shard": f"{group.rank}/{group.size}"})


def shard_finished(directory: Path, config: SynthesisConfig) -> bool:
    """True when ``directory`` holds the assembled chains of a shard run with ``config``."""
    try:
        manifest = load_manifest(directory)
    except (OSError, ValueError):
        return False
    if manifest is None or not (directory / TRAIN_FILE).exists():
        return False
    assembled = manifest.stages.get("assemble")
    if assembled is None or not assembled.complete:
        return False
    return manifest.config == config.model_dump(mode="json")


def synthesize_data_parallel(
    prompts: Sequence[Prompt],
    out: Path,
    config: SynthesisConfig,
    group: ProcessGroup,
    show_progress: bool = True,
) -> Manifest | None:
    """Run this process's share; on rank 0 also wait for the others and merge into ``out``.

    Returns the merged manifest on rank 0, None on the other ranks.
    """
    mine = shard_config(config, group)
    items = select_prompts(prompts, None, (group.rank, group.size))
    shard_dirs = group.shard_dirs(out)
    synthesize(items, shard_dirs[group.rank], Components(mine), mine, show_progress)
    if group.rank != 0:
        return None
    configs = {
        d: shard_config(config, ProcessGroup(i, group.size)) for i, d in enumerate(shard_dirs)
    }
    group.wait_for(shard_dirs, lambda d: shard_finished(d, configs[d]))
    return merge_outputs(shard_dirs, out, order=[p.id for p in prompts])
