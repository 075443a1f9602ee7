"""The SemEval span-F1 metric and the mapping from pair probabilities to characters."""

from __future__ import annotations

import pytest

from detox_cmd.spans.decision import SpanDecision
from detox_cmd.spans.detector import SpanPrediction
from detox_cmd.spans.evaluate import (
    evaluate_predictions,
    predicted_chars,
    span_f1,
    toxic_tokens,
)


def test_span_f1_hand_computed_cases() -> None:
    assert span_f1([], []) == 1.0
    assert span_f1([1, 2], []) == 0.0
    assert span_f1([], [1, 2]) == 0.0
    assert span_f1([1, 2, 3], [7, 8]) == 0.0
    # predicted {1..4}, gold {3..8}: overlap 2, F1 = 2*2 / (4 + 6)
    assert span_f1([1, 2, 3, 4], range(3, 9)) == pytest.approx(0.4)
    assert span_f1([5, 5, 6], [5, 6]) == 1.0  # sets, duplicates do not count twice


def test_toxic_tokens_rules() -> None:
    probs = [0.1, 0.9, 0.8, 0.2]  # 5 tokens; pairs (1,2) and (2,3) toxic
    assert toxic_tokens(probs, 0.5, "intersection") == [False, False, True, False, False]
    assert toxic_tokens(probs, 0.5, "union") == [False, True, True, True, False]
    # the first and last tokens belong to one pair only
    assert toxic_tokens([0.9, 0.1], 0.5, "intersection") == [True, False, False]
    assert toxic_tokens([0.1, 0.9], 0.5, "intersection") == [False, False, True]
    assert toxic_tokens([], 0.5, "intersection") == []
    assert toxic_tokens([0.5], 0.5, "union") == [False, False]  # strictly greater


def _prediction(text: str, probs: list[float], sentence: float = 0.9) -> SpanPrediction:
    offsets, start = [], 0
    for word in text.split():
        start = text.index(word, start)
        offsets.append((start, start + len(word)))
        start += len(word)
    return SpanPrediction(
        tokens=text.split(), offsets=offsets, segment_probs=probs, sentence_prob=sentence
    )


def test_predicted_chars_fill_inner_gaps_only() -> None:
    text = "you are a stupid  idiot ok then"
    #        you-are are-a a-stupid stupid-idiot idiot-ok ok-then
    pred = _prediction(text, [0.1, 0.1, 0.9, 0.9, 0.9, 0.1])
    chars = predicted_chars(pred, 0.5, "intersection")
    assert text[min(chars) : max(chars) + 1] == "stupid  idiot"
    assert len(chars) == len("stupid  idiot")
    assert pred.toxic_char_ranges() == [(10, 23)]
    union = pred.toxic_char_ranges(SpanDecision(char_rule="union"))
    assert [text[s:e] for s, e in union] == ["a stupid  idiot ok"]


def test_evaluate_predictions_counts() -> None:
    texts = ["you are an idiot", "nice day", "go away fool"]
    preds = [
        _prediction(texts[0], [0.1, 0.2, 0.9], sentence=0.8),  # predicts "idiot"
        _prediction(texts[1], [0.1], sentence=0.2),  # predicts nothing
        _prediction(texts[2], [0.7, 0.1], sentence=0.3),  # predicts "go"
    ]
    gold = [list(range(11, 16)), [], list(range(8, 12))]
    result = evaluate_predictions(preds, gold, SpanDecision(threshold=0.5))
    assert result.span_f1 == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    # gold pairs: text0 [0, 0, 1]; text1 [0]; text2 [0, 1]; predicted: [0,0,1], [0], [1,0]
    assert result.segment_precision == pytest.approx(1 / 2)
    assert result.segment_recall == pytest.approx(1 / 2)
    assert result.sentence_accuracy == pytest.approx(2 / 3)
    assert result.n_texts == 3 and result.n_segments == 6 and result.n_gold_toxic_segments == 2
    with pytest.raises(ValueError):
        evaluate_predictions(preds, gold[:2])
