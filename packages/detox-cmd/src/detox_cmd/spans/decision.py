"""From a detector's probabilities to toxic characters: the decision rule stored with a detector.

Steps, each a field of :class:`SpanDecision`:

1. ``sentence_gate``: a text whose ``sentence_prob`` is ``<= sentence_gate`` gets no span (0 keeps
   every text; SemEval has toxic posts without a toxic span).
2. Toxic tokens. The token head: ``token_probs > threshold``. The pair head: ``char_rule`` over the
   pairs ``> threshold`` (``evaluate.toxic_tokens``: ``intersection`` recovers the word itself,
   ``union`` takes both tokens of every toxic pair, as CMD masks).
3. ``whole_words``: a word split into pieces ("stu", "##pid") is toxic as a whole when any of its
   pieces is. Pieces belong to one word when they touch and both sides of the junction are
   letters or digits (so "idiot" and "." stay apart).
4. ``trim_punctuation``: tokens without a letter or digit are dropped from the ends of each run
   of toxic tokens (gold spans cover words, and almost never start or end with punctuation).
5. The characters of the toxic tokens plus the gaps between consecutive toxic tokens
   (``evaluate.token_chars``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, Field

CharRule = Literal["intersection", "union"]
DEFAULT_CHAR_RULE: CharRule = "intersection"


class SpanDecision(BaseModel):
    """How probabilities become toxic characters (stored in ``detector.json``)."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    char_rule: CharRule = DEFAULT_CHAR_RULE
    whole_words: bool = False
    trim_punctuation: bool = False
    sentence_gate: float = Field(default=0.0, ge=0.0, le=1.0)


class TokenPrediction(Protocol):
    """What the decision needs from a ``SpanPrediction``."""

    @property
    def tokens(self) -> list[str]:
        """The word-pieces (``##`` marks a continuation)."""
        ...

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """Character offsets of the tokens."""
        ...

    @property
    def segment_probs(self) -> list[float]:
        """Probability that pair (i, i+1) is toxic."""
        ...

    @property
    def token_probs(self) -> list[float] | None:
        """Probability that each token is toxic (token head only)."""
        ...

    @property
    def sentence_prob(self) -> float:
        """Probability that the text is toxic."""
        ...


def toxic_tokens(
    segment_probs: Sequence[float], threshold: float = 0.5, rule: CharRule = DEFAULT_CHAR_RULE
) -> list[bool]:
    """Which tokens are toxic given the pair probabilities (see the module docstring)."""
    n_tokens = len(segment_probs) + 1 if segment_probs else 0
    toxic_pairs = [p > threshold for p in segment_probs]
    flags: list[bool] = []
    for k in range(n_tokens):
        pairs = ([toxic_pairs[k - 1]] if k > 0 else []) + (
            [toxic_pairs[k]] if k < len(toxic_pairs) else []
        )
        flags.append(all(pairs) if rule == "intersection" else any(pairs))
    return flags


def token_chars(offsets: Sequence[tuple[int, int]], flags: Sequence[bool]) -> list[int]:
    """Character offsets of the flagged tokens, with the gaps between consecutive ones."""
    chars: set[int] = set()
    for k, flag in enumerate(flags):
        if not flag:
            continue
        chars.update(range(*offsets[k]))
        if k + 1 < len(flags) and flags[k + 1]:
            chars.update(range(offsets[k][1], offsets[k + 1][0]))
    return sorted(chars)


def char_ranges(chars: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as contiguous ``[start, end)`` ranges."""
    ranges: list[tuple[int, int]] = []
    for c in sorted(set(chars)):
        if ranges and ranges[-1][1] == c:
            ranges[-1] = (ranges[-1][0], c + 1)
        else:
            ranges.append((c, c + 1))
    return ranges


def _alnum(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def word_groups(tokens: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Token indices grouped into words: touching pieces joined by letters or digits."""
    groups: list[list[int]] = []
    for k, (start, _) in enumerate(offsets):
        piece = tokens[k].removeprefix("##")
        if groups:
            prev = groups[-1][-1]
            prev_piece = tokens[prev].removeprefix("##")
            if offsets[prev][1] == start and prev_piece[-1:].isalnum() and piece[:1].isalnum():
                groups[-1].append(k)
                continue
        groups.append([k])
    return groups


def extend_to_words(
    tokens: Sequence[str], offsets: Sequence[tuple[int, int]], flags: Sequence[bool]
) -> list[bool]:
    """Flag every piece of a word that has a flagged piece."""
    out = list(flags)
    for group in word_groups(tokens, offsets):
        if any(flags[k] for k in group):
            for k in group:
                out[k] = True
    return out


def trim_runs(tokens: Sequence[str], flags: Sequence[bool]) -> list[bool]:
    """Unflag punctuation-only tokens at the ends of each run of flagged tokens."""
    out = list(flags)
    k = 0
    while k < len(out):
        if not out[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(out) and out[end + 1]:
            end += 1
        start, stop = k, end
        while start <= stop and not _alnum(tokens[start].removeprefix("##")):
            out[start] = False
            start += 1
        while stop >= start and not _alnum(tokens[stop].removeprefix("##")):
            out[stop] = False
            stop -= 1
        k = end + 1
    return out


def decided_tokens(prediction: TokenPrediction, decision: SpanDecision) -> list[bool]:
    """Which tokens of a prediction are toxic under ``decision`` (steps 1-4)."""
    n = len(prediction.offsets)
    if n == 0 or prediction.sentence_prob <= decision.sentence_gate:
        return [False] * n
    if prediction.token_probs is not None:
        flags = [p > decision.threshold for p in prediction.token_probs]
    else:
        flags = toxic_tokens(prediction.segment_probs, decision.threshold, decision.char_rule)
        flags = flags or [False] * n
    if decision.whole_words:
        flags = extend_to_words(prediction.tokens, prediction.offsets, flags)
    if decision.trim_punctuation:
        flags = trim_runs(prediction.tokens, flags)
    return flags


def decided_chars(prediction: TokenPrediction, decision: SpanDecision) -> list[int]:
    """The character offsets a prediction marks toxic under ``decision``."""
    return token_chars(prediction.offsets, decided_tokens(prediction, decision))
