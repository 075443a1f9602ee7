"""The decode loop's bookkeeping against a cache-free reference loop and transformers' generate.

The loop preallocates its attention mask, keeps no seen-token mask without a penalty and asks for
no hidden states in plain mode; these tests would fail if such a shortcut changed a token.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from detox_core.decoding import (
    DecodeConfig,
    apply_repetition_penalty,
    choose_next_token,
    context_token_mask,
    decode,
    repeated_ngram_mask,
)

PROMPTS = ["Hello, my name is Alex and I like", "I think", "The weather today is", "A"]


@torch.inference_mode()
def reference_decode(
    model: Any, tok: Any, prompts: list[str], config: DecodeConfig
) -> list[list[int]]:
    """No cache, no preallocation: the whole left-padded sequence through the model every step."""
    enc = tok(prompts, return_tensors="pt", padding=True)
    ids, attention = enc["input_ids"], enc["attention_mask"]
    vocab = int(model.config.vocab_size)
    seen = context_token_mask(ids, attention, vocab)
    generator = None
    if not config.greedy:
        generator = torch.Generator().manual_seed(config.seed)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    finished = [False] * len(prompts)
    rows: list[list[int]] = [[] for _ in prompts]
    for _ in range(config.max_new_tokens):
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=attention, position_ids=position_ids).logits
        scores = apply_repetition_penalty(logits[:, -1].float(), seen, config.repetition_penalty)
        token = choose_next_token(scores, config, generator)
        token = torch.where(torch.tensor(finished), torch.full_like(token, pad), token)
        for row, t in enumerate(token.tolist()):
            if not finished[row]:
                rows[row].append(t)
                finished[row] = t == eos
        seen[torch.arange(len(prompts)), token] = True
        ids = torch.cat([ids, token[:, None]], dim=-1)
        attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=-1)
    return [r[:-1] if r and r[-1] == eos else r for r in rows]


@pytest.mark.parametrize(
    "config",
    [
        DecodeConfig(max_new_tokens=10, greedy=True),
        DecodeConfig(max_new_tokens=10, seed=5, top_p=0.9),
        DecodeConfig(max_new_tokens=10, seed=7, top_p=0.8, temperature=0.7, top_k=50),
        DecodeConfig(max_new_tokens=10, greedy=True, repetition_penalty=1.5),
        DecodeConfig(max_new_tokens=10, seed=2, top_p=0.95, repetition_penalty=1.3),
    ],
    ids=["greedy", "top-p", "top-k-temp", "greedy-penalty", "top-p-penalty"],
)
def test_loop_equals_a_cache_free_reference(tiny_lm: Any, config: DecodeConfig) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    ours = decode(model, tok, PROMPTS, config)
    assert ours.token_ids == reference_decode(model, tok, PROMPTS, config)


def test_left_padded_greedy_batch_equals_transformers_generate(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    ours = decode(model, tok, PROMPTS, DecodeConfig(max_new_tokens=12, greedy=True))
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    ref = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    for row, ids in enumerate(ref[:, enc["input_ids"].shape[1] :].tolist()):
        if tok.eos_token_id in ids:
            ids = ids[: ids.index(tok.eos_token_id)]
        assert ours.token_ids[row] == ids


def test_plain_decoding_asks_for_no_hidden_states(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    calls: list[dict[str, Any]] = []

    def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        calls.append(dict(kwargs))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        decode(model, tok, PROMPTS, DecodeConfig(max_new_tokens=5, seed=1))
    finally:
        handle.remove()
    assert len(calls) == 5
    assert all(c["output_hidden_states"] is False for c in calls)
    assert all(c["logits_to_keep"] == 1 for c in calls)
    # one new token per step after the prompt, against a mask that grows by one column a step
    widths = [c["attention_mask"].shape[1] for c in calls]
    assert widths == [widths[0] + i for i in range(5)]
    assert all(c["input_ids"].shape[1] == 1 for c in calls[1:])


def test_no_seen_mask_without_a_penalty(tiny_lm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import detox_core.decoding as decoding

    def boom(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise AssertionError("penalty bookkeeping without a penalty")

    monkeypatch.setattr(decoding, "context_token_mask", boom)
    monkeypatch.setattr(decoding, "apply_repetition_penalty", boom)
    out = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, DecodeConfig(max_new_tokens=4))
    assert len(out.token_ids) == len(PROMPTS)


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def test_repeated_ngram_mask_by_hand() -> None:
    generated = torch.tensor([[1, 2, 3, 1, 2], [4, 4, 4, 4, 5]])
    scores = torch.zeros(2, 8)
    banned = repeated_ngram_mask(scores, generated, 3)
    # row 0: "1 2" was followed by 3; row 1: "4 5" never occurred before
    assert banned[0].nonzero().flatten().tolist() == [3] and not banned[1].any()
    bigram = repeated_ngram_mask(scores, generated, 2)
    assert bigram[0].nonzero().flatten().tolist() == [3] and not bigram[1].any()
    unigram = repeated_ngram_mask(scores, generated, 1)
    assert unigram[1].nonzero().flatten().tolist() == [4, 5]
    assert not repeated_ngram_mask(scores, generated[:, :2], 3).any()  # too short


def test_no_repeat_ngram_stops_greedy_loops(tiny_lm: Any) -> None:
    # A tiny random model under greedy decoding loops; with the guard no bigram of the
    # generation repeats, and the tokens up to the first would-be repeat are unchanged.
    plain = DecodeConfig(max_new_tokens=30, greedy=True)
    free = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, plain).token_ids
    assert any(len(set(_ngrams(ids, 2))) < len(_ngrams(ids, 2)) for ids in free)
    guarded_config = plain.model_copy(update={"no_repeat_ngram": 2})
    guarded = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, guarded_config).token_ids
    for ids, base in zip(guarded, free, strict=True):
        assert len(set(_ngrams(ids, 2))) == len(_ngrams(ids, 2))
        # the index of the first token that completes a bigram seen before
        first_repeat = next(
            (i for i in range(1, len(base)) if tuple(base[i - 1 : i + 1]) in _ngrams(base[:i], 2)),
            len(base),
        )
        assert ids[:first_repeat] == base[:first_repeat]


class _EosEager:
    """A step scorer under which end-of-sequence is always the best token."""

    output_hidden_states = False

    def __init__(self, eos_id: int) -> None:
        self.eos_id = eos_id

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        scores = logits.float().clone()
        scores[:, self.eos_id] = scores.max() + 10.0
        return scores


@pytest.mark.parametrize("greedy", [True, False])
def test_min_new_tokens_holds_back_eos(tiny_lm: Any, greedy: bool) -> None:
    eager = _EosEager(int(tiny_lm.tokenizer.eos_token_id))
    config = DecodeConfig(max_new_tokens=8, greedy=greedy)
    at_once = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, config, eager)
    assert at_once.stopped == ["eos"] * len(PROMPTS)
    assert all(ids == [] for ids in at_once.token_ids)
    held = config.model_copy(update={"min_new_tokens": 3})
    later = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, held, eager)
    assert later.stopped == ["eos"] * len(PROMPTS)
    assert [len(ids) for ids in later.token_ids] == [3] * len(PROMPTS)
    banned = config.model_copy(update={"min_new_tokens": 8})
    never = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, banned, eager)
    assert never.stopped == ["length"] * len(PROMPTS)
    assert all(tiny_lm.tokenizer.eos_token_id not in ids for ids in never.token_ids)


class _EosOnly(_EosEager):
    """A step scorer that allows end-of-sequence alone (like DDSC's head when it holds only it)."""

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        scores = torch.full_like(logits, float("-inf"), dtype=torch.float32)
        scores[:, self.eos_id] = 0.0
        return scores


def test_min_new_tokens_falls_back_to_the_logits_when_only_eos_is_allowed(tiny_lm: Any) -> None:
    eos_id = int(tiny_lm.tokenizer.eos_token_id)
    config = DecodeConfig(max_new_tokens=6, greedy=True, min_new_tokens=6)
    out = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, config, _EosOnly(eos_id))
    assert out.stopped == ["length"] * len(PROMPTS)
    # the fallback is the model's own greedy choice with end-of-sequence banned
    plain = decode(tiny_lm.model, tiny_lm.tokenizer, PROMPTS, config)
    assert out.token_ids == plain.token_ids
    assert all(eos_id not in ids for ids in out.token_ids)
