"""Evaluating a span detector against gold character spans (SemEval-2021 Task 5).

- ``span_f1``: the task's official metric, per text: F1 of the predicted vs the gold sets of
  character offsets, 1 when both are empty and 0 when exactly one is; the score of a file is the
  mean over its texts.
- Predicted characters come from the pair probabilities in two steps. First, which *tokens* are
  toxic, by ``rule``:

  - ``intersection`` (default): a token is toxic when every adjacent pair it belongs to is
    ``> threshold`` (the first and last token of a text belong to one pair only). Because a
    segment is labelled toxic when it overlaps a toxic character, a toxic word makes both of its
    pairs toxic while its neighbours have one toxic pair each: this rule recovers the word itself.
    With gold segment labels it reproduces the gold characters of SemEval's train and trial files
    at F1 0.96-0.97.
  - ``union``: both tokens of every toxic pair, which is what CMD masking replaces (METHODS §2.3).
    It always adds a neighbour word to each toxic word; with gold segment labels its F1 ceiling is
    about 0.72.

  Second, the characters of the toxic tokens, plus the characters between two consecutive toxic
  tokens (the skipped whitespace), because gold spans cover whole phrases ("violent and
  aggressive") including their inner spaces but not the spaces around them.
- Segment precision/recall: over all adjacent pairs of all texts, a pair predicted toxic when
  ``> threshold``, gold toxic when it overlaps a gold character (0 when undefined).
- Sentence accuracy: ``sentence_prob > threshold`` against "the text has a gold span".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel

from detox_cmd.spans.dataset import pair_labels_from_chars

CharRule = Literal["intersection", "union"]
DEFAULT_CHAR_RULE: CharRule = "intersection"


class PairPrediction(Protocol):
    """What evaluation needs from a ``SpanPrediction``."""

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """Character offsets of the tokens."""
        ...

    @property
    def segment_probs(self) -> list[float]:
        """Probability that pair (i, i+1) is toxic."""
        ...

    @property
    def sentence_prob(self) -> float:
        """Probability that the text is toxic."""
        ...


class SpanEvalResult(BaseModel):
    """Span-detection metrics on a file of texts with gold character spans."""

    span_f1: float
    segment_precision: float
    segment_recall: float
    sentence_accuracy: float
    n_texts: int
    n_segments: int
    n_gold_toxic_segments: int
    threshold: float
    char_rule: CharRule


def span_f1(predicted: Iterable[int], gold: Iterable[int]) -> float:
    """SemEval-2021 Task 5 per-text F1 of character offsets (1.0 when both sets are empty)."""
    pred, true = set(predicted), set(gold)
    if not true:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    return 2 * len(pred & true) / (len(pred) + len(true))


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


def predicted_chars(
    prediction: PairPrediction, threshold: float = 0.5, rule: CharRule = DEFAULT_CHAR_RULE
) -> list[int]:
    """The character offsets a prediction marks toxic."""
    return token_chars(prediction.offsets, toxic_tokens(prediction.segment_probs, threshold, rule))


def char_ranges(chars: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted offsets as contiguous ``[start, end)`` ranges."""
    ranges: list[tuple[int, int]] = []
    for c in sorted(set(chars)):
        if ranges and ranges[-1][1] == c:
            ranges[-1] = (ranges[-1][0], c + 1)
        else:
            ranges.append((c, c + 1))
    return ranges


def evaluate_predictions(
    predictions: Sequence[PairPrediction],
    gold_spans: Sequence[Sequence[int]],
    threshold: float = 0.5,
    rule: CharRule = DEFAULT_CHAR_RULE,
) -> SpanEvalResult:
    """Span F1, segment precision/recall and sentence accuracy of predictions vs gold offsets."""
    if len(predictions) != len(gold_spans):
        raise ValueError("one prediction per gold text is needed")
    f1s: list[float] = []
    tp = fp = fn = 0
    n_segments = n_gold = correct_sentences = 0
    for prediction, gold in zip(predictions, gold_spans, strict=True):
        f1s.append(span_f1(predicted_chars(prediction, threshold, rule), gold))
        labels = pair_labels_from_chars(prediction.offsets, gold)
        for label, prob in zip(labels, prediction.segment_probs, strict=True):
            predicted = prob > threshold
            tp += int(predicted and label == 1)
            fp += int(predicted and label == 0)
            fn += int(not predicted and label == 1)
        n_segments += len(labels)
        n_gold += sum(labels)
        correct_sentences += int((prediction.sentence_prob > threshold) == (len(gold) > 0))
    n = len(predictions)
    return SpanEvalResult(
        span_f1=sum(f1s) / n if n else 0.0,
        segment_precision=tp / (tp + fp) if tp + fp else 0.0,
        segment_recall=tp / (tp + fn) if tp + fn else 0.0,
        sentence_accuracy=correct_sentences / n if n else 0.0,
        n_texts=n,
        n_segments=n_segments,
        n_gold_toxic_segments=n_gold,
        threshold=threshold,
        char_rule=rule,
    )
