"""Continuation perplexity against a direct per-item computation with the tiny LM."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from detox_core.perplexity import continuation_perplexity

PROMPTS = ["Hello, my name is", "I think that we should", "The weather", "You are"]
CONTINUATIONS = [
    " Alex and I like to walk.",
    " go to the market tomorrow",
    " today is sunny",
    " a lovely day",
]


def direct_nll(model: Any, tokenizer: Any, prompt: str, continuation: str) -> tuple[float, int]:
    """Summed NLL of the continuation tokens, one unpadded sequence at a time."""
    context = tokenizer(prompt)["input_ids"]
    target = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + target])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    # The token at position i is predicted by the logits at position i - 1.
    predicted = logits[len(context) - 1 : len(context) + len(target) - 1]
    nll = torch.nn.functional.cross_entropy(predicted, torch.tensor(target), reduction="sum")
    return float(nll), len(target)


@pytest.fixture(params=["left", "right"])
def padded_lm(request: pytest.FixtureRequest, tiny_lm: Any) -> Iterator[Any]:
    """The tiny LM with its tokenizer set to pad on the given side."""
    before = tiny_lm.tokenizer.padding_side
    tiny_lm.tokenizer.padding_side = request.param
    yield tiny_lm
    tiny_lm.tokenizer.padding_side = before


def test_matches_direct_computation(padded_lm: Any) -> None:
    model, tok = padded_lm.model, padded_lm.tokenizer
    result = continuation_perplexity(model, tok, PROMPTS, CONTINUATIONS, batch_size=4)
    pieces = [direct_nll(model, tok, p, c) for p, c in zip(PROMPTS, CONTINUATIONS, strict=True)]
    expected_items = [math.exp(nll / n) for nll, n in pieces]
    assert result.per_item == pytest.approx(expected_items, rel=1e-4)
    total_nll, total_tokens = sum(n for n, _ in pieces), sum(k for _, k in pieces)
    assert result.n_tokens == total_tokens
    assert result.ppl == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-4)
    # Token-weighted: not the mean of per-item perplexities unless lengths agree.
    assert result.ppl != pytest.approx(sum(expected_items) / len(expected_items), rel=1e-6)


def test_batched_equals_unbatched(padded_lm: Any) -> None:
    model, tok = padded_lm.model, padded_lm.tokenizer
    batched = continuation_perplexity(model, tok, PROMPTS, CONTINUATIONS, batch_size=3)
    single = continuation_perplexity(model, tok, PROMPTS, CONTINUATIONS, batch_size=1)
    assert batched.per_item == pytest.approx(single.per_item, rel=1e-4)
    assert batched.ppl == pytest.approx(single.ppl, rel=1e-4)


def test_prompt_tokens_are_context_only(tiny_lm: Any) -> None:
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    a = continuation_perplexity(model, tok, ["The weather"], [" today is sunny"])
    b = continuation_perplexity(
        model, tok, ["You are a stupid idiot. The weather"], [" today is sunny"]
    )
    count = len(tok(" today is sunny", add_special_tokens=False)["input_ids"])
    assert a.n_tokens == b.n_tokens == count
    assert a.ppl != pytest.approx(b.ppl, rel=1e-6)  # same tokens scored, different context


def test_empty_continuation_and_empty_prompt(tiny_lm: Any) -> None:
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    result = continuation_perplexity(
        model, tok, ["Hello", "", "The weather"], ["", " Hello there", " today"]
    )
    assert result.per_item[0] is None
    assert result.per_item[1] is not None and result.per_item[1] > 1.0
    assert result.n_tokens == len(tok(" Hello there", add_special_tokens=False)["input_ids"]) + len(
        tok(" today", add_special_tokens=False)["input_ids"]
    )
    nothing = continuation_perplexity(model, tok, ["Hello"], [""])
    assert math.isnan(nothing.ppl) and nothing.per_item == [None]
    with pytest.raises(ValueError):
        continuation_perplexity(model, tok, ["a", "b"], ["c"])
