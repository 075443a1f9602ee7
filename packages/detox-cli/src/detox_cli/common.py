"""Helpers shared by the command modules: prompt options, model loading, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from detox_core.data import read_prompts
from detox_core.errors import DetoxError
from detox_core.generation import BatchDecoder, run_sampling
from detox_core.io import JsonlWriter
from detox_core.locking import output_lock
from detox_core.records import Generation, Prompt, generation_key


def prompts_from_options(
    prompt: list[str] | None, prompts_file: Path | None, limit: int | None = None
) -> list[Prompt]:
    """Prompts from repeated ``--prompt TEXT`` or one ``--prompts FILE`` (exactly one of them)."""
    if prompt and prompts_file:
        raise DetoxError("both --prompt and --prompts were given", "use one of them")
    if prompts_file is not None:
        return read_prompts(prompts_file, limit=limit)
    if prompt:
        return [Prompt(id=f"prompt-{i}", text=text) for i, text in enumerate(prompt)]
    raise DetoxError("no prompt given", "pass --prompt TEXT or --prompts FILE")


def parse_shard(shard: str | None) -> tuple[int, int]:
    """Parse ``I/N`` (0-based I) into ``(I, N)``; ``None`` is ``(0, 1)``."""
    if shard is None:
        return 0, 1
    try:
        index_text, count_text = shard.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise DetoxError(f"bad --shard {shard!r}", "use I/N, e.g. 0/4 for the first of 4") from None
    if count < 1 or not 0 <= index < count:
        raise DetoxError(f"bad --shard {shard!r}", "I must be in 0..N-1")
    return index, count


def print_records(records: Iterable[BaseModel]) -> None:
    """Print records as JSON lines on stdout."""
    for record in records:
        sys.stdout.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")


def sample_prompts(
    items: list[Prompt],
    decoder: BatchDecoder,
    *,
    samples: int,
    batch_size: int,
    seed: int,
    method: str,
    model_name: str,
    out: Path | None,
) -> list[Generation]:
    """Sample every prompt with ``decoder``: to ``out`` (resumable JSONL) or as JSON lines on
    stdout. Returns the generations made in this call."""
    with ExitStack() as stack:
        writer = None
        if out is not None:
            stack.enter_context(output_lock(out, folder=False))
            writer = stack.enter_context(JsonlWriter(out, key=generation_key))
        made = run_sampling(
            items,
            decoder,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            method=method,
            model_name=model_name,
            writer=writer,
        )
    if out is None:
        print_records(made)
    else:
        Console(stderr=True).print(f"wrote {len(made)} generations to {out}")
    return made
