"""The decision rule (threshold, whole words, punctuation trimming, sentence gate) and choosing it
on a dev split, on hand-made tokens and offsets."""

from __future__ import annotations

import itertools

import pytest

from detox_cmd.spans.decision import (
    SpanDecision,
    decided_chars,
    decided_tokens,
    extend_to_words,
    trim_runs,
    word_groups,
)
from detox_cmd.spans.detector import SpanPrediction
from detox_cmd.spans.tuning import DecisionGrid, choose_decision, mean_span_f1

# "you stupid idiot!" as WordPieces: you | stu ##pid | idiot | !
TEXT = "you stupid idiot!"
TOKENS = ["you", "stu", "##pid", "idiot", "!"]
OFFSETS = [(0, 3), (4, 7), (7, 10), (11, 16), (16, 17)]


def _prediction(
    token_probs: list[float] | None = None,
    segment_probs: list[float] | None = None,
    sentence: float = 0.9,
) -> SpanPrediction:
    pairs = segment_probs
    if pairs is None:
        assert token_probs is not None
        pairs = [max(a, b) for a, b in itertools.pairwise(token_probs)]
    return SpanPrediction(
        tokens=TOKENS,
        offsets=OFFSETS,
        segment_probs=pairs,
        sentence_prob=sentence,
        token_probs=token_probs,
    )


def _marked(prediction: SpanPrediction, decision: SpanDecision) -> list[str]:
    return [TEXT[s:e] for s, e in prediction.toxic_char_ranges(decision)]


def test_word_groups_join_touching_pieces_but_not_punctuation() -> None:
    assert word_groups(TOKENS, OFFSETS) == [[0], [1, 2], [3], [4]]
    # "f**k": pieces touch, but the junctions are not letters
    assert word_groups(["f", "*", "*", "k"], [(0, 1), (1, 2), (2, 3), (3, 4)]) == [
        [0],
        [1],
        [2],
        [3],
    ]


def test_extend_to_words_and_trim_runs() -> None:
    assert extend_to_words(TOKENS, OFFSETS, [False, False, True, False, False]) == [
        False,
        True,
        True,
        False,
        False,
    ]
    # a run "idiot !" loses its trailing "!", a lone "!" disappears, inner punctuation stays
    assert trim_runs(TOKENS, [False, False, False, True, True]) == [False] * 3 + [True, False]
    assert trim_runs(TOKENS, [False] * 4 + [True]) == [False] * 5
    assert trim_runs(["a", ",", "b"], [True, True, True]) == [True, True, True]


def test_threshold_is_strict_and_token_probs_take_precedence() -> None:
    pred = _prediction(token_probs=[0.1, 0.6, 0.6, 0.7, 0.2])
    assert decided_tokens(pred, SpanDecision(threshold=0.6)) == [False, False, False, True, False]
    assert _marked(pred, SpanDecision(threshold=0.5)) == ["stupid idiot"]
    assert _marked(pred, SpanDecision(threshold=0.65)) == ["idiot"]
    assert _marked(pred, SpanDecision(threshold=0.7)) == []


def test_post_processing_on_the_pair_head() -> None:
    # pairs: you-stu 0.2, stu-##pid 0.9, ##pid-idiot 0.9, idiot-! 0.9
    pred = _prediction(segment_probs=[0.2, 0.9, 0.9, 0.9])
    plain = SpanDecision(threshold=0.5)
    # intersection: ##pid, idiot and the final "!" (it belongs to one pair only)
    assert _marked(pred, plain) == ["pid idiot!"]
    words = plain.model_copy(update={"whole_words": True})
    assert _marked(pred, words) == ["stupid idiot!"]
    both = words.model_copy(update={"trim_punctuation": True})
    assert _marked(pred, both) == ["stupid idiot"]
    assert decided_chars(pred, both) == list(range(4, 16))


def test_sentence_gate_drops_every_span_of_a_text() -> None:
    pred = _prediction(token_probs=[0.1, 0.9, 0.9, 0.9, 0.1], sentence=0.3)
    assert _marked(pred, SpanDecision(sentence_gate=0.2)) == ["stupid idiot"]
    assert _marked(pred, SpanDecision(sentence_gate=0.3)) == []


def test_choose_decision_finds_the_threshold_that_separates_gold() -> None:
    # the gold word "idiot" has p 0.62, the noise words 0.4-0.55: only thresholds in
    # [0.55, 0.62) give F1 1 on both texts; the second text has no gold span and low p
    preds = [
        _prediction(token_probs=[0.4, 0.55, 0.5, 0.62, 0.3]),
        _prediction(token_probs=[0.2, 0.3, 0.3, 0.45, 0.1], sentence=0.05),
    ]
    gold = [list(range(11, 16)), []]
    tuned = choose_decision(preds, gold)
    assert 0.55 <= tuned.decision.threshold < 0.62
    assert tuned.dev_span_f1 == pytest.approx(1.0)
    assert tuned.n_dev_texts == 2
    assert mean_span_f1(preds, [set(g) for g in gold], tuned.decision) == pytest.approx(1.0)
    assert mean_span_f1(preds, [set(g) for g in gold], SpanDecision(threshold=0.35)) < 1.0
    curve = dict(tuned.threshold_curve)
    assert curve[0.575] == pytest.approx(1.0) and curve[0.3] < 1.0


def test_choose_decision_uses_the_gate_and_post_processing_only_when_they_help() -> None:
    # text 1: "stu" alone passes the threshold; whole words recover "stupid" (the gold)
    # text 2: no gold span, a confident pair; only the sentence gate (p 0.15) removes it
    preds = [
        _prediction(token_probs=[0.1, 0.9, 0.3, 0.1, 0.1]),
        _prediction(token_probs=[0.1, 0.1, 0.1, 0.9, 0.1], sentence=0.15),
    ]
    gold = [list(range(4, 10)), []]
    grid = DecisionGrid(thresholds=[0.5], sentence_gates=[0.0, 0.2])
    tuned = choose_decision(preds, gold, grid)
    assert tuned.decision.whole_words and tuned.decision.sentence_gate == 0.2
    assert not tuned.decision.trim_punctuation  # no gain: the earlier option is kept
    assert tuned.dev_span_f1 == pytest.approx(1.0)
    with pytest.raises(ValueError):
        choose_decision(preds, gold, DecisionGrid(thresholds=[]))
