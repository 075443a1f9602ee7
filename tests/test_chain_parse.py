"""The chain parser: the continuation between `# Generation:` and the closing `#`."""

from __future__ import annotations

import pytest

from detox_cmd.chain import build_chain, model_input
from detox_cmd.inference import parse_chain


@pytest.mark.parametrize(
    ("positive", "masked", "rephrased"),
    [
        (" and then we went home", "You are <MASK>", "You are kind"),
        ("and then we went home", None, None),
        (" a line break\nand more", "You are <MASK>", "You are kind"),
    ],
)
def test_round_trip_of_built_chains(
    positive: str, masked: str | None, rephrased: str | None
) -> None:
    prompt = "You are such a"
    chain, _ = build_chain(prompt, positive, masked, rephrased)
    generated = chain[len(model_input(prompt)) :]
    parsed = parse_chain(generated)
    assert parsed.generation == positive
    assert not parsed.malformed
    assert parsed.chain == generated


def test_text_after_the_closing_marker_is_ignored() -> None:
    parsed = parse_chain("# The context is non-toxic. # Generation: nice words # Text: more #")
    assert parsed.generation == "nice words"
    assert not parsed.malformed


def test_a_hash_sign_closes_the_generation_without_its_space() -> None:
    # '#' is the chain's section sign: the model often closes a 20-token continuation that ends
    # mid-word with a bare '#', or after a line break. A continuation holding '#' is cut there.
    head = "# The context is non-toxic. # Generation:"
    glued = parse_chain(head + " they are full of sh#")
    assert glued.generation == "they are full of sh" and not glued.malformed
    after_break = parse_chain(head + " a new paragraph.\n\n#")
    assert after_break.generation == "a new paragraph.\n\n" and not after_break.malformed
    assert parse_chain(head + " item#3 is here #").generation == "item"


def test_empty_generation() -> None:
    parsed = parse_chain("# The context is non-toxic. # Generation:  #")
    assert parsed.generation == ""
    assert not parsed.malformed


def test_missing_closing_marker_is_malformed_and_keeps_the_tail() -> None:
    parsed = parse_chain("# Let's detoxify step by step. # Generation: it never closes")
    assert parsed.malformed
    assert parsed.generation == "it never closes"


def test_missing_generation_marker_falls_back_to_the_whole_text() -> None:
    parsed = parse_chain(" just a plain continuation of the prompt ")
    assert parsed.malformed
    assert parsed.generation == "just a plain continuation of the prompt"
