"""Scorer throughput: texts/s of tox-minilm and profanity at batch 64 on short texts, one run.

Run with ``uv run pytest benchmarks/test_bench_scorer.py --benchmark-enable -s``; the texts/s of
each scorer and their ratio are printed and stored in ``extra_info`` (target for tox-minilm: at
least 200 texts/s on a 2-core CPU). Threads follow the CLI's rule (``configure_threads``:
``OMP_NUM_THREADS``, else 1 on a machine with 2 CPUs or fewer). No timed asserts.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from detox_core.runtime import configure_threads
from detox_core.scoring import load_scorer

BATCH = 64
N_TEXTS = 512
SENTENCE = (
    "I think that people who say this are really just trying to make the world a better place "
    "but you are a stupid idiot and nobody wants to hear it so go home now please thanks"
)
WORDS = SENTENCE.split()
RESULTS: dict[str, float] = {}


def short_texts(n: int = N_TEXTS, seed: int = 0) -> list[str]:
    """Generation-like short texts of 8 to 30 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(8, 30))) for _ in range(n)]


@pytest.mark.parametrize("spec", ["tox-minilm", "profanity"])
def test_scorer_throughput(benchmark: Any, spec: str) -> None:
    threads = configure_threads().threads
    scorer = load_scorer(spec, device="cpu")
    texts = short_texts()
    scorer.score(texts[:BATCH])  # warm up

    def run() -> None:
        for start in range(0, len(texts), BATCH):
            scorer.score(texts[start : start + BATCH])

    benchmark.pedantic(run, rounds=3, iterations=1)
    rate = len(texts) / benchmark.stats.stats.mean
    RESULTS[spec] = rate
    benchmark.extra_info["texts_per_s"] = rate
    benchmark.extra_info["scorer"] = f"{scorer.name}@{scorer.version}"
    benchmark.extra_info["threads"] = threads
    print(f"\n{spec}: {rate:.0f} texts/s at batch {BATCH}, {threads} thread(s)")
    if len(RESULTS) == 2:
        ratio = RESULTS["profanity"] / RESULTS["tox-minilm"]
        benchmark.extra_info["profanity_over_tox_minilm"] = ratio
        print(f"profanity is {ratio:.1f}x faster than tox-minilm")
