"""Evaluating a span detector against gold character spans (SemEval-2021 Task 5).

- ``span_f1``: the task's official metric, per text: F1 of the predicted vs the gold sets of
  character offsets, 1 when both are empty and 0 when exactly one is; the score of a file is the
  mean over its texts.
- Predicted characters come from the probabilities by a ``SpanDecision`` (``decision.py``):
  which tokens are toxic (``char_rule`` for the pair head: ``intersection``, the default, recovers
  the word itself and reproduces SemEval's gold characters from gold segment labels at F1
  0.96-0.97; ``union`` adds a neighbour word to each toxic word, as CMD masks, F1 ceiling about
  0.72), optional post-processing, then the characters of the toxic tokens and the gaps between
  consecutive ones.
- Segment precision/recall: over all adjacent pairs of all texts, a pair predicted toxic when
  ``> threshold``, gold toxic when it overlaps a gold character (0 when undefined).
- Character precision/recall: micro-averaged over all characters of all texts.
- Sentence accuracy: ``sentence_prob > 0.5`` against "the text has a gold span".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from detox_cmd.spans.dataset import pair_labels_from_chars
from detox_cmd.spans.decision import (
    DEFAULT_CHAR_RULE,
    CharRule,
    SpanDecision,
    TokenPrediction,
    char_ranges,
    decided_chars,
    token_chars,
    toxic_tokens,
)

__all__ = [
    "DEFAULT_CHAR_RULE",
    "CharRule",
    "SpanDecision",
    "SpanEvalResult",
    "char_ranges",
    "evaluate_predictions",
    "predicted_chars",
    "span_f1",
    "token_chars",
    "toxic_tokens",
]


class SpanEvalResult(BaseModel):
    """Span-detection metrics on a file of texts with gold character spans."""

    span_f1: float
    segment_precision: float
    segment_recall: float
    sentence_accuracy: float
    n_texts: int
    n_segments: int
    n_gold_toxic_segments: int
    char_precision: float = 0.0
    char_recall: float = 0.0
    decision: SpanDecision = SpanDecision()


def span_f1(predicted: Iterable[int], gold: Iterable[int]) -> float:
    """SemEval-2021 Task 5 per-text F1 of character offsets (1.0 when both sets are empty)."""
    pred, true = set(predicted), set(gold)
    if not true:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    return 2 * len(pred & true) / (len(pred) + len(true))


def predicted_chars(
    prediction: TokenPrediction, threshold: float = 0.5, rule: CharRule = DEFAULT_CHAR_RULE
) -> list[int]:
    """The character offsets a prediction marks toxic (threshold and rule only)."""
    return decided_chars(prediction, SpanDecision(threshold=threshold, char_rule=rule))


def evaluate_predictions(
    predictions: Sequence[TokenPrediction],
    gold_spans: Sequence[Sequence[int]],
    decision: SpanDecision | None = None,
) -> SpanEvalResult:
    """Span F1, segment and character precision/recall and sentence accuracy of predictions vs
    gold offsets, under ``decision`` (default: threshold 0.5, intersection, no post-processing)."""
    decision = decision or SpanDecision()
    threshold = decision.threshold
    if len(predictions) != len(gold_spans):
        raise ValueError("one prediction per gold text is needed")
    f1s: list[float] = []
    tp = fp = fn = 0
    n_segments = n_gold = correct_sentences = 0
    char_tp = char_pred = char_gold = 0
    for prediction, gold in zip(predictions, gold_spans, strict=True):
        chars, true = set(decided_chars(prediction, decision)), set(gold)
        f1s.append(span_f1(chars, true))
        char_tp += len(chars & true)
        char_pred += len(chars)
        char_gold += len(true)
        labels = pair_labels_from_chars(prediction.offsets, gold)
        for label, prob in zip(labels, prediction.segment_probs, strict=True):
            predicted = prob > threshold
            tp += int(predicted and label == 1)
            fp += int(predicted and label == 0)
            fn += int(not predicted and label == 1)
        n_segments += len(labels)
        n_gold += sum(labels)
        correct_sentences += int((prediction.sentence_prob > 0.5) == (len(gold) > 0))
    n = len(predictions)
    return SpanEvalResult(
        span_f1=sum(f1s) / n if n else 0.0,
        segment_precision=tp / (tp + fp) if tp + fp else 0.0,
        segment_recall=tp / (tp + fn) if tp + fn else 0.0,
        sentence_accuracy=correct_sentences / n if n else 0.0,
        n_texts=n,
        n_segments=n_segments,
        n_gold_toxic_segments=n_gold,
        char_precision=char_tp / char_pred if char_pred else 0.0,
        char_recall=char_tp / char_gold if char_gold else 0.0,
        decision=decision,
    )
