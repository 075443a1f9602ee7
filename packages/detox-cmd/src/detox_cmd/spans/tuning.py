"""Choosing a detector's decision rule (threshold, post-processing, sentence gate) on a dev split.

Every combination of the grid is scored by the mean SemEval span F1 on the dev texts; the best
one wins (ties go to the earlier combination: no post-processing before post-processing, lower
thresholds and gates first). A gated text (``sentence_prob <= gate``) predicts no span. The chosen rule is stored in ``detector.json`` and used by
``predict``, ``eval`` and CMD masking unless overridden. Never tune on the file you report.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from detox_cmd.spans.decision import CharRule, SpanDecision, TokenPrediction, decided_chars
from detox_cmd.spans.evaluate import span_f1


def default_thresholds() -> list[float]:
    """0.05, 0.075, ..., 0.95."""
    return [round(0.05 + 0.025 * i, 3) for i in range(37)]


class DecisionGrid(BaseModel):
    """The combinations tried when choosing a decision rule."""

    thresholds: list[float] = Field(default_factory=default_thresholds)
    char_rules: list[CharRule] = ["intersection"]
    whole_words: list[bool] = Field(default_factory=lambda: [False, True])
    trim_punctuation: list[bool] = Field(default_factory=lambda: [False, True])
    sentence_gates: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


class TunedDecision(BaseModel):
    """The chosen rule, its dev span F1, and the F1 of every threshold under the chosen rest."""

    decision: SpanDecision
    dev_span_f1: float
    n_dev_texts: int
    threshold_curve: list[tuple[float, float]]


def mean_span_f1(
    predictions: Sequence[TokenPrediction], gold: Sequence[set[int]], decision: SpanDecision
) -> float:
    """Mean per-text SemEval span F1 under ``decision``."""
    if not predictions:
        return 0.0
    scores = [
        span_f1(decided_chars(p, decision), g) for p, g in zip(predictions, gold, strict=True)
    ]
    return sum(scores) / len(scores)


def _gated_mean(
    scores: Sequence[float],
    predictions: Sequence[TokenPrediction],
    gold: Sequence[set[int]],
    gate: float,
) -> float:
    """Mean F1 when texts with ``sentence_prob <= gate`` predict nothing (1 when gold is empty)."""
    total = 0.0
    for score, prediction, true in zip(scores, predictions, gold, strict=True):
        if prediction.sentence_prob <= gate:
            total += 0.0 if true else 1.0
        else:
            total += score
    return total / len(scores) if scores else 0.0


def choose_decision(
    predictions: Sequence[TokenPrediction],
    gold_spans: Sequence[Sequence[int]],
    grid: DecisionGrid | None = None,
) -> TunedDecision:
    """The grid's decision rule with the best mean span F1 on ``predictions`` vs ``gold_spans``."""
    grid = grid or DecisionGrid()
    gold = [set(g) for g in gold_spans]
    best: tuple[float, SpanDecision] | None = None
    for rule in grid.char_rules:
        for words in grid.whole_words:
            for trim in grid.trim_punctuation:
                for threshold in grid.thresholds:
                    decision = SpanDecision(
                        threshold=threshold,
                        char_rule=rule,
                        whole_words=words,
                        trim_punctuation=trim,
                    )
                    scores = [
                        span_f1(decided_chars(p, decision), g)
                        for p, g in zip(predictions, gold, strict=True)
                    ]
                    for gate in grid.sentence_gates:
                        score = _gated_mean(scores, predictions, gold, gate)
                        if best is None or score > best[0] + 1e-12:
                            best = (score, decision.model_copy(update={"sentence_gate": gate}))
    if best is None:
        raise ValueError("the decision grid is empty")
    score, chosen = best
    curve = [
        (t, round(mean_span_f1(predictions, gold, chosen.model_copy(update={"threshold": t})), 4))
        for t in grid.thresholds
    ]
    return TunedDecision(
        decision=chosen, dev_span_f1=score, n_dev_texts=len(predictions), threshold_curve=curve
    )
