"""Shared helpers for the CMD training and chain tests: small chain data sets, one CPU thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from detox_cmd.chain import ChainRecord, build_chain

# (prompt, positive, negatives, toxic)
EXAMPLES = [
    ("You are a stupid", " person who likes to walk", [" idiot and I hate you", " fool"], True),
    ("The weather today is", " sunny with a light breeze", [], False),
    ("I think that we should", " go to the market tomorrow", [" hate you"], False),
    ("Hello, my name is", " Alex and I like the park", [" stupid idiot"], True),
]


def make_records(count: int = len(EXAMPLES)) -> list[ChainRecord]:
    """ChainRecords built with ``build_chain`` (toxic ones with masked/rephrased steps)."""
    records = []
    for i, (prompt, positive, negatives, toxic) in enumerate(EXAMPLES[:count]):
        masked, rephrased = (
            (prompt.rsplit(" ", 1)[0] + " <MASK>", prompt + " kind")
            if toxic
            else (
                None,
                None,
            )
        )
        chain, prefix = build_chain(prompt, positive, masked, rephrased)
        records.append(
            ChainRecord(
                id=f"ex-{i}",
                prompt=prompt,
                toxic=toxic,
                masked=masked,
                rephrased=rephrased,
                positive=positive,
                negatives=negatives,
                chain=chain,
                cl_prefix=prefix,
            )
        )
    return records


def write_records(path: Path, records: list[ChainRecord]) -> Path:
    """Write records as JSONL (the format `detox cmd synthesize` produces)."""
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run far faster on one intra-op thread on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
