"""Chain tokenisation: exact input/target boundary, label masking, batching, data order."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from train_helpers import make_records, one_thread  # noqa: F401

from detox_cmd.chain import model_input
from detox_cmd.training.data import (
    IGNORE_INDEX,
    ChainCollator,
    ChainDataset,
    EpochSampler,
    SplitInputTokenizer,
    encode_texts,
    split_chain,
    tokenize_chain,
)
from detox_core.errors import DetoxError


def test_labels_mask_the_input_and_keep_the_chain(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    record = make_records()[0]
    row = tokenize_chain(tok, record, max_length=512)
    assert row is not None
    head = model_input(record.prompt)
    head_ids = tok(head)["input_ids"]
    n = len(head_ids)
    assert row.input_ids[:n] == head_ids  # exactly what the model is given at inference
    assert row.labels[:n] == [IGNORE_INDEX] * n
    assert row.labels[n:] == row.input_ids[n:]
    assert row.labels[-1] == tok.eos_token_id
    target = tok.decode(row.labels[n:-1])
    assert target == record.chain[len(head) :]
    assert target.startswith("# Let's detoxify step by step.")


def test_without_eos_the_last_label_is_the_closing_marker(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    row = tokenize_chain(tok, make_records()[1], max_length=512, append_eos=False)
    assert row is not None
    assert tok.decode(row.labels[-1:]).strip() == "#"


def test_truncation_keeps_the_input_and_drops_rows_without_target(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    record = make_records()[0]
    head_len = len(tok(model_input(record.prompt))["input_ids"])
    row = tokenize_chain(tok, record, max_length=head_len + 3)
    assert row is not None
    assert len(row.input_ids) == head_len + 3
    assert sum(label != IGNORE_INDEX for label in row.labels) == 3
    assert tokenize_chain(tok, record, max_length=head_len) is None
    dataset = ChainDataset(tok, make_records(), max_length=head_len)
    assert dataset.dropped >= 1 and len(dataset) + dataset.dropped == len(make_records())


def test_chain_must_start_with_the_input() -> None:
    record = make_records()[0].model_copy(update={"chain": "# Text: something else"})
    with pytest.raises(DetoxError, match="does not start with"):
        split_chain(record)


def test_collator_pads_right_with_ignored_labels(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    rows = [tokenize_chain(tok, r, 512) for r in make_records()]
    batch = ChainCollator(pad_id=tok.pad_token_id)([r for r in rows if r is not None])
    lengths = [len(r.input_ids) for r in rows if r is not None]
    assert batch["input_ids"].shape == (len(lengths), max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    pad = batch["attention_mask"] == 0
    assert bool((batch["labels"][pad] == IGNORE_INDEX).all())
    assert bool((batch["input_ids"][pad] == tok.pad_token_id).all())
    assert batch["negatives"] == [r.negatives for r in make_records()]


def test_encode_texts_right_pads_and_never_returns_an_empty_row(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    ids, mask = encode_texts(tok, ["hello there my friend", ""], max_length=32)
    assert mask[0, 0] == 1 and mask[1].sum() == 1
    assert ids[1, 0] == tok.eos_token_id
    assert bool((mask[0, :-1] >= mask[0, 1:]).all())  # ones first: right padding


def test_epoch_sampler_is_a_function_of_seed_and_epoch() -> None:
    a, b, c = EpochSampler(20, seed=3), EpochSampler(20, seed=3), EpochSampler(20, seed=4)
    a.set_epoch(1)
    b.set_epoch(1)
    c.set_epoch(1)
    assert list(a) == list(b) and sorted(a) == list(range(20))
    assert list(a) != list(c)
    b.set_epoch(2)
    assert list(a) != list(b)


def test_split_tokenizer_matches_training_ids(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    record = make_records()[0]
    head, _ = split_chain(record)
    view = SplitInputTokenizer(tok, {record.cl_prefix: head})
    enc = view([record.cl_prefix, "plain text"], return_tensors="pt", padding=True)
    row = tokenize_chain(tok, record, 512)
    assert row is not None
    n = int(enc["attention_mask"][0].sum())
    got = enc["input_ids"][0, -n:].tolist()  # left padding, as the tokenizer is set up
    assert got == row.input_ids[:n]
    joint = tok(record.cl_prefix)["input_ids"]
    assert got != joint  # a joint tokenisation would merge the boundary differently
    plain = enc["input_ids"][1][enc["attention_mask"][1].bool()].tolist()
    assert plain == tok("plain text")["input_ids"]
    assert view.eos_token_id == tok.eos_token_id
    assert isinstance(enc["input_ids"], torch.Tensor)
