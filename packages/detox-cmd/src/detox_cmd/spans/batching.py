"""Turning tokenized texts into model windows and padded batches.

A window holds ``[CLS] tok_s .. tok_{e-1} [SEP]``; its pair labels are one per adjacent position
pair: the pairs touching ``[CLS]``/``[SEP]`` are 0, pairs that reach into padding are -100. Its
token labels (for the token head) are one per position: ``[CLS]``, ``[SEP]`` and padding are -100.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import torch

from detox_cmd.spans.dataset import IGNORE_INDEX, SpanExample, token_windows


class Window(NamedTuple):
    """One encoder input: ids with special tokens, pair labels (``len(ids) - 1``), sentence
    label, and which text and token range ``[start, end)`` it came from."""

    ids: list[int]
    pair_labels: list[int]
    sentence_label: int
    text_index: int
    start: int
    end: int
    token_labels: list[int] | None = None


class Batch(NamedTuple):
    """Padded tensors for one step (right padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    segment_labels: torch.Tensor
    sentence_labels: torch.Tensor
    token_labels: torch.Tensor


def text_windows(
    ids: Sequence[int],
    specials: tuple[int, int],
    max_length: int,
    text_index: int = 0,
    pair_labels: Sequence[int] | None = None,
    sentence_label: int = 0,
    first_only: bool = False,
    token_labels: Sequence[int] | None = None,
) -> list[Window]:
    """Cut a tokenized text into windows of at most ``max_length`` positions (specials included).

    With ``pair_labels`` (one per adjacent token pair of the whole text), each window gets its
    slice, framed by 0 for the ``[CLS]`` and ``[SEP]`` pairs; a window's sentence label is
    ``sentence_label`` when the text fits one window, else whether the window holds a toxic pair.
    ``first_only`` keeps the first window (for texts whose sentence label covers the whole text).
    """
    cls_id, sep_id = specials
    ranges = token_windows(len(ids), max_length - 2)
    if first_only:
        ranges = ranges[:1]
    windows: list[Window] = []
    for start, end in ranges:
        n_pairs = max(end - start - 1, 0)
        inner = list(pair_labels[start : start + n_pairs]) if pair_labels is not None else []
        inner = inner or [0] * n_pairs
        labels = [0, *inner, 0] if end > start else [0]
        label = sentence_label
        if pair_labels is not None and len(ranges) > 1:
            label = int(1 in inner)
        tokens = None
        if token_labels is not None:
            tokens = [IGNORE_INDEX, *token_labels[start:end], IGNORE_INDEX]
        windows.append(
            Window([cls_id, *ids[start:end], sep_id], labels, label, text_index, start, end, tokens)
        )
    return windows


def example_windows(
    examples: Sequence[SpanExample], specials: tuple[int, int], max_length: int
) -> list[Window]:
    """Training windows: every window of a gold-span text, the first window of a Jigsaw text."""
    windows: list[Window] = []
    for index, example in enumerate(examples):
        windows += text_windows(
            example.ids,
            specials,
            max_length,
            text_index=index,
            pair_labels=example.pair_labels,
            sentence_label=example.sentence_label,
            first_only=example.source == "jigsaw",
            token_labels=example.token_labels,
        )
    return windows


def collate(windows: Sequence[Window], pad_id: int) -> Batch:
    """Right-pad a list of windows into tensors; padded pair labels are -100."""
    width = max(len(w.ids) for w in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(windows), width), dtype=torch.long)
    segments = torch.full((len(windows), width - 1), IGNORE_INDEX, dtype=torch.long)
    tokens = torch.full((len(windows), width), IGNORE_INDEX, dtype=torch.long)
    for row, window in enumerate(windows):
        n = len(window.ids)
        input_ids[row, :n] = torch.tensor(window.ids)
        attention[row, :n] = 1
        segments[row, : n - 1] = torch.tensor(window.pair_labels)
        if window.token_labels is not None:
            tokens[row, :n] = torch.tensor(window.token_labels)
    sentence = torch.tensor([w.sentence_label for w in windows], dtype=torch.long)
    return Batch(input_ids, attention, segments, sentence, tokens)


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random | None = None
) -> list[list[int]]:
    """Index batches of similar lengths (little padding).

    Without ``rng``: sorted by length. With ``rng``: shuffled, sorted within chunks of 50
    batches, and the batches shuffled, so each epoch sees a different order.
    """
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
    else:
        rng.shuffle(order)
        chunk = batch_size * 50
        order = [
            i
            for s in range(0, len(order), chunk)
            for i in sorted(order[s : s + chunk], key=lambda i: lengths[i])
        ]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches
