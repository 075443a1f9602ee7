"""Scoring many texts: batches, a progress bar, and a callback per batch (for resumable output)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from detox_core.progress import progress_bar
from detox_core.records import Score
from detox_core.scoring.base import ToxicityScorer, score_texts

# on_batch(start index, scores of texts[start : start + len(scores)])
BatchCallback = Callable[[int, list[Score]], None]


class ScoredText(BaseModel):
    """A scored line of a text file (``line`` is its 1-based line number)."""

    line: int
    text: str
    toxicity: Score


def score_in_batches(
    scorer: ToxicityScorer,
    texts: Sequence[str],
    batch_size: int = 32,
    on_batch: BatchCallback | None = None,
    description: str = "scoring",
    show_progress: bool = True,
) -> list[Score]:
    """Score ``texts`` in batches with a progress bar; ``on_batch`` sees each batch's scores."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    scores: list[Score] = []
    with progress_bar() as progress:
        task = progress.add_task(description, total=len(texts), visible=show_progress)
        for start in range(0, len(texts), batch_size):
            batch = score_texts(scorer, texts[start : start + batch_size])
            if on_batch is not None:
                on_batch(start, batch)
            scores.extend(batch)
            progress.advance(task, len(batch))
    return scores
