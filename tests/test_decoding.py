"""The core decode loop against transformers' generate, and its batching behaviour."""

from __future__ import annotations

from typing import Any

import torch

from detox_core.decoding import DecodeConfig, apply_repetition_penalty, decode, top_p_filter


def test_greedy_matches_transformers_generate(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    prompt = "Hello, my name is"
    ours = decode(model, tok, [prompt], DecodeConfig(max_new_tokens=8, greedy=True))
    enc = tok([prompt], return_tensors="pt")
    ref = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    ref_ids = ref[0, enc["input_ids"].shape[1] :].tolist()
    eos = tok.eos_token_id
    if eos in ref_ids:
        ref_ids = ref_ids[: ref_ids.index(eos)]
    assert ours.token_ids[0] == ref_ids


def test_left_padded_batch_equals_single_rows(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    prompts = ["Hello, my name is Alex and I like", "I think"]
    config = DecodeConfig(max_new_tokens=6, greedy=True)
    batch = decode(model, tok, prompts, config)
    singles = [decode(model, tok, [p], config).token_ids[0] for p in prompts]
    assert batch.token_ids == singles


def test_sampling_is_reproducible_by_seed(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    prompts = ["The weather today"] * 4
    a = decode(model, tok, prompts, DecodeConfig(max_new_tokens=6, seed=3, top_p=1.0))
    b = decode(model, tok, prompts, DecodeConfig(max_new_tokens=6, seed=3, top_p=1.0))
    c = decode(model, tok, prompts, DecodeConfig(max_new_tokens=6, seed=4, top_p=1.0))
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_stop_strings_cut_the_text(tiny_lm: Any) -> None:
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    free = decode(model, tok, ["Hello"], DecodeConfig(max_new_tokens=12, greedy=True))
    text = free.texts[0]
    assert len(text) > 2
    stop = text[1:3]
    cut = decode(model, tok, ["Hello"], DecodeConfig(max_new_tokens=12, greedy=True, stop=(stop,)))
    assert cut.texts[0] == text[: text.find(stop)]
    assert cut.stopped[0] == "stop"


def test_top_p_keeps_the_smallest_head() -> None:
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(scores, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(scores, 0.8))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(scores, 0.81))
    assert kept.tolist() == [[True, True, True, False]]


def test_repetition_penalty_pushes_seen_tokens_down() -> None:
    scores = torch.tensor([[2.0, -1.0, 0.5]])
    seen = torch.tensor([[True, True, False]])
    out = apply_repetition_penalty(scores, seen, 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5]]


def test_context_token_mask_keeps_a_real_token_that_is_also_the_pad_id() -> None:
    from detox_core.decoding import context_token_mask

    pad = 3
    # left padding with id 3, which is also a real token of both rows (before and after the pads)
    input_ids = torch.tensor([[pad, pad, 5, 3, 7], [pad, 3, 3, 1, pad]])
    attention = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]])
    for _ in range(20):  # the same answer every time
        mask = context_token_mask(input_ids, attention, vocab=10)
        assert mask[0].nonzero().flatten().tolist() == [3, 5, 7]
        assert mask[1].nonzero().flatten().tolist() == [1, 3]
    only_pads = context_token_mask(torch.tensor([[pad, pad, 4]]), torch.tensor([[0, 0, 1]]), 10)
    assert only_pads[0].nonzero().flatten().tolist() == [4]
