"""Split an evaluation into shards without changing a single sample.

Work items are the ``(prompt, sample)`` pairs in the order ``run_sampling`` uses, cut into chunks
of ``batch_size``; a shard owns a contiguous block of whole chunks. Every chunk is decoded with the
same batch and the same seed as in an unsharded run, so merged shards equal one run.
"""

from __future__ import annotations

from collections.abc import Sequence

from detox_core.records import Prompt
from detox_eval.run_folder import Shard

ItemKey = tuple[str, str, int]  # (method, prompt id, sample), as ``generation_key``


def shard_chunks(n_items: int, batch_size: int, shard: Shard) -> range:
    """The chunk indices that ``shard`` owns."""
    n_chunks = -(-n_items // batch_size)
    return range(shard.index * n_chunks // shard.count, (shard.index + 1) * n_chunks // shard.count)


def shard_items(
    prompts: Sequence[Prompt], samples: int, batch_size: int, shard: Shard
) -> list[tuple[str, int]]:
    """The ``(prompt id, sample)`` items of ``shard``, in decoding order."""
    items = [(p.id, k) for p in prompts for k in range(samples)]
    chunks = shard_chunks(len(items), batch_size, shard)
    return items[chunks.start * batch_size : chunks.stop * batch_size]


def foreign_keys(
    prompts: Sequence[Prompt], samples: int, batch_size: int, shard: Shard, method: str
) -> set[ItemKey]:
    """Resume keys of the items other shards own (marked done so this shard skips them)."""
    own = set(shard_items(prompts, samples, batch_size, shard))
    return {(method, p.id, k) for p in prompts for k in range(samples) if (p.id, k) not in own}


def shard_prompts(
    prompts: Sequence[Prompt], samples: int, batch_size: int, shard: Shard
) -> list[Prompt]:
    """The prompts with at least one item in ``shard``."""
    ids = {pid for pid, _ in shard_items(prompts, samples, batch_size, shard)}
    return [p for p in prompts if p.id in ids]
