"""Sampling jobs: N samples per prompt, in fixed batches with fixed seeds, resumable.

Work items are ``(prompt, sample)`` pairs in a fixed order, cut into chunks of ``batch_size``.
Chunk ``i`` is decoded with seed ``seed * 1_000_003 + i``, so the same prompts and settings give
the same seeds whatever the method, and a resumed job re-decodes a partly written chunk exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from detox_core.io import JsonlWriter
from detox_core.progress import progress_bar
from detox_core.records import Generation, Prompt

# decode_batch(prompt_texts, seed) -> (texts, per-row extras)
BatchDecoder = Callable[[list[str], int], tuple[list[str], list[dict[str, Any]]]]


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` in a job seeded with ``seed``."""
    return seed * 1_000_003 + chunk


def run_sampling(
    prompts: Sequence[Prompt],
    decode_batch: BatchDecoder,
    *,
    samples: int = 1,
    batch_size: int = 8,
    seed: int = 0,
    method: str = "vanilla",
    model_name: str = "",
    writer: JsonlWriter | None = None,
    description: str = "generating",
    show_progress: bool = True,
) -> list[Generation]:
    """Generate ``samples`` continuations per prompt; skip items the writer already holds.

    Returns the generations made in this call (in item order).
    """
    items = [(p, k) for p in prompts for k in range(samples)]
    done = writer.done if writer is not None else set()
    made: list[Generation] = []
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    with progress_bar() as progress:
        task = progress.add_task(description, total=len(items), visible=show_progress)
        for index, chunk in enumerate(chunks):
            todo = [(p, k) for p, k in chunk if (method, p.id, k) not in done]
            if not todo:
                progress.advance(task, len(chunk))
                continue
            texts, extras = decode_batch([p.text for p, _ in chunk], chunk_seed(seed, index))
            for (prompt, sample), text, extra in zip(chunk, texts, extras, strict=True):
                if (method, prompt.id, sample) in done:
                    continue
                gen = Generation(
                    prompt_id=prompt.id,
                    prompt=prompt.text,
                    sample=sample,
                    text=text,
                    method=method,
                    model=model_name,
                    seed=chunk_seed(seed, index),
                    prompt_toxicity=prompt.toxicity,
                    extras=extra,
                )
                if writer is not None:
                    writer.write(gen)
                made.append(gen)
            progress.advance(task, len(chunk))
    return made
