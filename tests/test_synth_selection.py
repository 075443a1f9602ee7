"""Selection of positive/negatives (METHODS §2.5) on hand-made scores, and the chain (§2.6)."""

from __future__ import annotations

import pytest

from detox_cmd.chain import NONTOXIC_TEMPLATE, TOXIC_TEMPLATE, model_input
from detox_cmd.synthesis.assembly import chain_record, select_for
from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.records import SynthesisRecord
from detox_cmd.synthesis.selection import (
    ALL_TOXIC,
    NO_SCORED_CONTINUATION,
    select_continuations,
)
from detox_core.records import Score


def test_positive_is_least_toxic_and_negatives_the_toxic_top_three() -> None:
    sel = select_continuations([0.9, 0.05, 0.6, 0.35, 0.2])
    assert sel.positive == 1
    assert sel.negatives == [0, 2, 3]  # most toxic first, all > 0.3
    assert sel.dropped is None


def test_negatives_must_exceed_the_negative_threshold() -> None:
    sel = select_continuations([0.31, 0.3, 0.1, 0.2, 0.0])
    assert sel.positive == 4
    assert sel.negatives == [0]  # 0.3 is not > 0.3; 0.2 is in the top three but too low


def test_at_most_three_negatives() -> None:
    sel = select_continuations([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    assert sel.positive == 5
    assert sel.negatives == [0, 1, 2]


def test_only_the_three_most_toxic_are_candidates() -> None:
    # the 4th most toxic (0.4 > 0.3) is not a negative even though fewer than 3 pass
    sel = select_continuations([0.2, 0.25, 0.1, 0.4, 0.0, 0.28])
    assert sel.positive == 4
    assert sel.negatives == [3]


def test_no_negative_when_every_continuation_is_mild() -> None:
    sel = select_continuations([0.1, 0.2, 0.3, 0.05, 0.0])
    assert sel.positive == 4 and sel.negatives == []


def test_drop_when_the_least_toxic_is_over_half() -> None:
    assert select_continuations([0.9, 0.51, 0.7]).dropped == ALL_TOXIC
    kept = select_continuations([0.9, 0.5, 0.7])  # 0.5 is not > 0.5
    assert kept.positive == 1 and kept.negatives == [0, 2]


def test_missing_scores_are_never_chosen() -> None:
    sel = select_continuations([None, 0.2, None, 0.9, 0.6])
    assert sel.positive == 1
    assert sel.negatives == [3, 4]
    assert select_continuations([None, None]).dropped == NO_SCORED_CONTINUATION
    # a missing score is not read as 0: the scored one decides, and it is toxic
    assert select_continuations([None, 0.8]).dropped == ALL_TOXIC


def test_blank_continuations_are_never_chosen() -> None:
    sel = select_continuations([0.0, 0.1, 0.9], texts=["  ", "fine", "bad"])
    assert sel.positive == 1 and sel.negatives == [2]


def test_thresholds_are_options() -> None:
    sel = select_continuations(
        [0.6, 0.2, 0.25], toxic_threshold=0.7, negative_threshold=0.2, max_negatives=1
    )
    assert sel.positive == 1 and sel.negatives == [0]


def _scores(values: list[float | None]) -> list[Score]:
    return [Score(value=v, scorer="fake", version="1") for v in values]


def test_toxic_chain_equals_the_template() -> None:
    record = SynthesisRecord(
        id="p1",
        prompt="You are a stupid idiot",
        stage="continue",
        prompt_score=Score(value=0.9, scorer="file", version="rtp.jsonl"),
        toxic=True,
        masked="You are a <MASK>",
        rephrased="You are a nice person",
        continuations=[" and I like you.", " idiot!", "\nso bad "],
        continuation_scores=_scores([0.1, 0.95, 0.4]),
    )
    sel = select_for(record, SynthesisConfig())
    chain = chain_record(record, sel)
    expected = TOXIC_TEMPLATE.format(
        prompt="You are a stupid idiot",
        masked="You are a <MASK>",
        rephrased="You are a nice person",
        positive="and I like you.",
    )
    assert chain.chain == expected
    assert chain.cl_prefix == expected[: expected.rindex("# Generation:") + len("# Generation:")]
    assert chain.chain.startswith(model_input(record.prompt))
    assert chain.positive == "and I like you."
    assert chain.negatives == ["idiot!", "so bad"]
    assert chain.toxic and chain.prompt_toxicity == 0.9
    assert chain.scorer == "fake@1"
    assert chain.scores["positive"] == 0.1 and chain.scores["negatives"] == [0.95, 0.4]


def test_nontoxic_chain_equals_the_template() -> None:
    record = SynthesisRecord(
        id="p2",
        prompt="The weather today",
        stage="continue",
        prompt_score=Score(value=0.1, scorer="fake", version="1"),
        toxic=False,
        continuations=[" is sunny.", " is grim."],
        continuation_scores=_scores([0.2, 0.1]),
    )
    chain = chain_record(record, select_for(record, SynthesisConfig()))
    assert chain.chain == NONTOXIC_TEMPLATE.format(prompt="The weather today", positive="is grim.")
    assert chain.masked is None and chain.rephrased is None
    assert chain.negatives == []


def test_chain_needs_a_positive() -> None:
    record = SynthesisRecord(id="x", prompt="p", stage="continue", toxic=False)
    with pytest.raises(ValueError, match="no positive"):
        chain_record(record, select_continuations([0.9]))
