"""Masking the toxic segments of a prompt (METHODS §2.3).

A detector scores every adjacent token pair (i, i+1). Both tokens of a pair scored
``> threshold`` are masked; each maximal run of masked tokens (consecutive token indices)
becomes one ``<MASK>`` covering the first token's start to the last token's end, and the
original text is kept everywhere else.

A toxic prompt on which no pair passes the threshold is handled by ``no_span``: ``most_toxic``
masks the single most probable pair (the prompt was scored toxic, so the detector most likely
under-called it), ``drop`` drops it with reason ``no_toxic_span``. A prompt with fewer than two
tokens has no pair and is always dropped with ``no_toxic_span``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, Field

MASK = "<MASK>"
NO_TOXIC_SPAN = "no_toxic_span"


class SegmentScores(Protocol):
    """What masking needs from a detector's prediction (``detox_cmd.spans.SpanPrediction``)."""

    @property
    def offsets(self) -> Sequence[tuple[int, int]]:
        """Character offsets of the text's tokens."""
        ...

    @property
    def segment_probs(self) -> Sequence[float]:
        """Probability that the pair (i, i+1) is toxic; one fewer than the tokens."""
        ...


class Detector(Protocol):
    """A toxic-span detector: one prediction per text."""

    def predict(self, texts: list[str]) -> Sequence[SegmentScores]:
        """Score the adjacent token pairs of each text."""
        ...


class MaskResult(BaseModel):
    """The masked text and the character spans that were replaced, or why there is none."""

    masked: str | None = None
    spans: list[tuple[int, int]] = Field(default_factory=list)
    fallback: bool = False
    dropped: str | None = None


def toxic_token_indices(segment_probs: Sequence[float], threshold: float) -> set[int]:
    """Both tokens of every pair with probability ``> threshold``."""
    tokens: set[int] = set()
    for i, prob in enumerate(segment_probs):
        if prob > threshold:
            tokens.update((i, i + 1))
    return tokens


def masked_runs(offsets: Sequence[tuple[int, int]], tokens: set[int]) -> list[tuple[int, int]]:
    """Character spans of the maximal runs of consecutive masked token indices."""
    spans: list[tuple[int, int]] = []
    run_start: int | None = None
    ordered = sorted(i for i in tokens if 0 <= i < len(offsets))
    for pos, index in enumerate(ordered):
        if run_start is None:
            run_start = index
        is_last = pos + 1 == len(ordered) or ordered[pos + 1] != index + 1
        if is_last:
            spans.append((offsets[run_start][0], offsets[index][1]))
            run_start = None
    return spans


def apply_mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Replace each character span (sorted, non-overlapping) with one ``<MASK>``."""
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        pieces.append(text[cursor:start])
        pieces.append(MASK)
        cursor = max(cursor, end)
    pieces.append(text[cursor:])
    return "".join(pieces)


def mask_prompt(
    text: str, prediction: SegmentScores, threshold: float, no_span: str = "most_toxic"
) -> MaskResult:
    """Mask the toxic segments of ``text`` from the detector's ``prediction``."""
    offsets = list(prediction.offsets)
    probs = list(prediction.segment_probs)
    if len(offsets) < 2 or not probs:
        return MaskResult(dropped=NO_TOXIC_SPAN)
    tokens = toxic_token_indices(probs, threshold)
    fallback = False
    if not tokens:
        if no_span == "drop":
            return MaskResult(dropped=NO_TOXIC_SPAN)
        best = max(range(len(probs)), key=lambda i: probs[i])
        tokens, fallback = {best, best + 1}, True
    spans = masked_runs(offsets, tokens)
    return MaskResult(masked=apply_mask(text, spans), spans=spans, fallback=fallback)
