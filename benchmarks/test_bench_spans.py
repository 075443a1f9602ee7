"""Span-detector speed: ``detox cmd spans eval`` on 2,000 SemEval-like texts (target: < 60 s on
this 2-core CPU, the size of the official test set).

Run with ``uv run pytest benchmarks/test_bench_spans.py --benchmark-enable -s``; the shipped
detector predicts 2,000 texts (the 690 texts of ``tsd_trial.csv`` repeated, else 2,000 random
comment-length texts) once, and the seconds and texts/s are printed and stored in ``extra_info``.
Threads follow the CLI's rule (``configure_threads``). No timed asserts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from detox_core.runtime import configure_threads

N_TEXTS = 2000
TRIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "toxic_spans" / "tsd_trial.csv"
SENTENCE = (
    "I think that people who say this are really just trying to make the world a better place "
    "but you are a stupid idiot and nobody wants to hear it so go home now please thanks"
)
WORDS = SENTENCE.split()


def eval_texts() -> list[str]:
    """2,000 texts: the trial file repeated, or random 20-60 word texts without it."""
    if TRIAL.is_file():
        from detox_core.data.toxic_spans import read_toxic_spans

        texts = [row.text for row in read_toxic_spans(TRIAL)]
        return (texts * (N_TEXTS // len(texts) + 1))[:N_TEXTS]
    rng = random.Random(0)
    return [" ".join(rng.choices(WORDS, k=rng.randint(20, 60))) for _ in range(N_TEXTS)]


def test_span_detector_eval_speed(benchmark: Any) -> None:
    from detox_cmd.spans import default_detector

    threads = configure_threads().threads
    detector = default_detector("cpu")
    texts = eval_texts()
    detector.predict(texts[:32])  # warm up

    benchmark.pedantic(lambda: detector.predict(texts), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        seconds=seconds,
        texts_per_s=N_TEXTS / seconds,
        detector=f"{detector.name}@{detector.version}",
        threads=threads,
    )
    print(f"\n{detector.name}@{detector.version}: {N_TEXTS} texts in {seconds:.1f} s "
          f"({N_TEXTS / seconds:.0f} texts/s), {threads} thread(s)")  # fmt: skip
