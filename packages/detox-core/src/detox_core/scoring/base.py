"""The scorer protocol: batched ``score(texts) -> list[float | None]`` with a name and version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from detox_core.records import Score


@runtime_checkable
class ToxicityScorer(Protocol):
    """Scores texts for toxicity in [0, 1]; ``None`` marks a score that could not be had."""

    name: str
    version: str

    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Score a batch of texts; the result has one entry per text, in order."""
        ...


def score_texts(scorer: ToxicityScorer, texts: Sequence[str]) -> list[Score]:
    """Score texts and wrap each value with the scorer's name and version."""
    values = scorer.score(texts)
    if len(values) != len(texts):
        raise RuntimeError(f"scorer {scorer.name} returned {len(values)} scores for {len(texts)}")
    return [Score(value=v, scorer=scorer.name, version=scorer.version) for v in values]
