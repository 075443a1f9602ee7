"""Choosing the positive and the negatives among the continuations (METHODS §2.5).

- A continuation is a candidate when it has a score and is not blank: a missing score is never
  read as 0, so such a continuation is never chosen as positive or negative (nor is an empty one,
  which would teach the model to stop at once).
- No candidate at all: dropped with ``no_scored_continuation``.
- Positive = the least toxic candidate (lowest index on ties); dropped with ``all_toxic`` when
  its score is ``> toxic_threshold`` (0.5).
- Negatives = of the ``max_negatives`` (3) most toxic other candidates, those with score
  ``> negative_threshold`` (0.3): 0 to 3 negatives, most toxic first.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

ALL_TOXIC = "all_toxic"
NO_SCORED_CONTINUATION = "no_scored_continuation"


class Selection(BaseModel):
    """Indices of the positive and the negatives, or why the example is dropped."""

    positive: int | None = None
    negatives: list[int] = Field(default_factory=list)
    dropped: str | None = None


def select_continuations(
    values: Sequence[float | None],
    texts: Sequence[str] | None = None,
    toxic_threshold: float = 0.5,
    negative_threshold: float = 0.3,
    max_negatives: int = 3,
) -> Selection:
    """Apply the selection rules to the continuation scores ``values`` (see module docstring)."""
    score: dict[int, float] = {}
    for i, value in enumerate(values):
        if value is not None and (texts is None or texts[i].strip()):
            score[i] = float(value)
    candidates = list(score)
    if not candidates:
        return Selection(dropped=NO_SCORED_CONTINUATION)
    positive = min(candidates, key=lambda i: (score[i], i))
    if score[positive] > toxic_threshold:
        return Selection(dropped=ALL_TOXIC)
    others = sorted((i for i in candidates if i != positive), key=lambda i: (-score[i], i))
    negatives = [i for i in others[:max_negatives] if score[i] > negative_threshold]
    return Selection(positive=positive, negatives=negatives)
