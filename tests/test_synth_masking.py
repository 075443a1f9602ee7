"""Masking rules (METHODS §2.3) on hand-made offsets, and the scorer-based detector."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from synth_fakes import FakeDetector, FakeScorer

from detox_cmd.synthesis.detectors import ScorerDetector, load_detector
from detox_cmd.synthesis.masking import (
    MASK,
    NO_TOXIC_SPAN,
    MaskResult,
    apply_mask,
    mask_prompt,
    masked_runs,
    toxic_token_indices,
)
from detox_core.errors import DetoxError

TEXT = "you are a stupid idiot and i hate it"
#       0   4   8 10     17    23  27 29   34
OFFSETS = [(0, 3), (4, 7), (8, 9), (10, 16), (17, 22), (23, 26), (27, 28), (29, 33), (34, 36)]


class Pred:
    def __init__(self, offsets: Sequence[tuple[int, int]], probs: Sequence[float]) -> None:
        self.offsets = list(offsets)
        self.segment_probs = list(probs)


def probs_with(toxic_pairs: set[int], high: float = 0.9, low: float = 0.1) -> list[float]:
    return [high if i in toxic_pairs else low for i in range(len(OFFSETS) - 1)]


def test_both_tokens_of_a_toxic_pair_are_masked() -> None:
    assert toxic_token_indices([0.1, 0.8, 0.2], 0.5) == {1, 2}
    assert toxic_token_indices([0.6, 0.6, 0.1], 0.5) == {0, 1, 2}


def test_threshold_is_strict_and_an_option() -> None:
    probs = [0.5, 0.35, 0.29]
    assert toxic_token_indices(probs, 0.5) == set()
    assert toxic_token_indices(probs, 0.3) == {0, 1, 2}


def test_runs_of_masked_tokens_collapse_to_one_span() -> None:
    # tokens 3,4 (stupid idiot) and 7 (hate) -> two runs
    spans = masked_runs(OFFSETS, {3, 4, 7})
    assert spans == [(10, 22), (29, 33)]
    assert apply_mask(TEXT, spans) == f"you are a {MASK} and i {MASK} it"


def test_overlapping_pairs_give_one_mask() -> None:
    # pairs (3,4) and (4,5) are toxic: tokens 3..5 form one run, one <MASK>
    result = mask_prompt(TEXT, Pred(OFFSETS, probs_with({3, 4})), 0.5)
    assert result.masked == f"you are a {MASK} i hate it"
    assert result.masked.count(MASK) == 1
    assert not result.fallback


def test_text_between_non_adjacent_tokens_is_kept_exactly() -> None:
    text = "a  b\tc  d"  # irregular whitespace is preserved outside the masks
    offsets = [(0, 1), (3, 4), (5, 6), (8, 9)]
    result = mask_prompt(text, Pred(offsets, [0.9, 0.1, 0.1]), 0.5)
    assert result.masked == f"{MASK}\tc  d"
    assert result.spans == [(0, 4)]


def test_word_pieces_mask_only_their_characters() -> None:
    text = "douchebagishness rules"
    offsets = [(0, 6), (6, 9), (9, 16), (17, 22)]  # dou|che ... pieces of one word
    result = mask_prompt(text, Pred(offsets, [0.9, 0.1, 0.1]), 0.5)
    assert result.masked == f"{MASK}ishness rules"


def test_no_toxic_segment_masks_the_most_toxic_pair_by_default() -> None:
    probs = probs_with(set(), low=0.1)
    probs[5] = 0.4  # pair (and, i)
    result = mask_prompt(TEXT, Pred(OFFSETS, probs), 0.5)
    assert result.fallback
    assert result.masked == f"you are a stupid idiot {MASK} hate it"


def test_no_toxic_segment_can_drop() -> None:
    result = mask_prompt(TEXT, Pred(OFFSETS, probs_with(set())), 0.5, no_span="drop")
    assert result == MaskResult(dropped=NO_TOXIC_SPAN)


def test_a_single_token_prompt_has_no_pair() -> None:
    assert mask_prompt("idiot", Pred([(0, 5)], []), 0.5).dropped == NO_TOXIC_SPAN


def test_fake_detector_masks_bad_words() -> None:
    text = "a stupid day, then nice weather and I hate it"
    (pred,) = FakeDetector().predict([text])
    result = mask_prompt(text, pred, 0.5)
    assert result.masked == f"{MASK} then nice weather and {MASK}"


def test_scorer_detector_scores_each_adjacent_word_pair() -> None:
    scorer = FakeScorer()
    detector = ScorerDetector(scorer)
    texts = ["you stupid fool!", "", "nice day"]
    preds = detector.predict(texts)
    assert scorer.seen == ["you stupid", "stupid fool", "fool!", "nice day"]
    assert preds[0].offsets == [(0, 3), (4, 10), (11, 15), (15, 16)]
    assert preds[0].segment_probs[:3] == [0.99, 0.99, 0.99]
    assert preds[1].offsets == [] and preds[1].segment_probs == []
    assert len(preds[2].segment_probs) == 1
    masked = mask_prompt(texts[0], preds[0], 0.5)
    assert masked.masked == MASK


def test_scorer_detector_treats_a_missing_score_as_not_toxic() -> None:
    detector = ScorerDetector(FakeScorer(missing=["stupid fool"]))
    (pred,) = detector.predict(["stupid fool"])
    assert pred.segment_probs == [0.0]


def test_load_detector_specs() -> None:
    scorer = FakeScorer()
    assert isinstance(load_detector("scorer", scorer), ScorerDetector)
    with pytest.raises(DetoxError, match="detector directory not found"):
        load_detector("/nonexistent/detector", scorer)


def test_components_name_the_detector_that_masked() -> None:
    from detox_cmd.synthesis.components import Components
    from detox_cmd.synthesis.config import SynthesisConfig

    config = SynthesisConfig(detector="scorer")
    assert Components(config, scorer=FakeScorer()).detector_label() is None  # not loaded yet
    parts = Components(config, scorer=FakeScorer())
    parts.detector()
    assert parts.detector_label() == "scorer:fake@1"
