"""Chain tokenisation, label masking, batching and the deterministic data order.

The model input ``# Text: {prompt} `` and the rest of the chain are tokenised separately and
concatenated, so the boundary between "not in the loss" and "in the loss" falls exactly between
two tokens, and the model sees at inference exactly the input tokens it saw in training (a
joint tokenisation would merge the input's trailing space with the chain's first ``#``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from detox_cmd.chain import ChainRecord, model_input
from detox_core.errors import DetoxError
from detox_core.io import read_jsonl_records

IGNORE_INDEX = -100


def load_chain_records(path: str | Path) -> list[ChainRecord]:
    """Read a ``train.jsonl`` of ChainRecords (as written by ``detox cmd synthesize``)."""
    records = read_jsonl_records(path, ChainRecord)
    if not records:
        raise DetoxError(f"{path} holds no chain records", "synthesize the chains first")
    return records


def split_chain(record: ChainRecord) -> tuple[str, str]:
    """``(model input, target)``: the chain cut right after ``# Text: {prompt} ``."""
    head = model_input(record.prompt)
    if not record.chain.startswith(head):
        raise DetoxError(
            f"chain record {record.id!r} does not start with {head!r}",
            "rebuild it with detox_cmd.chain.build_chain",
        )
    return head, record.chain[len(head) :]


def encode_pair(tokenizer: Any, head: str, tail: str) -> tuple[list[int], list[int]]:
    """Token ids of ``head`` (with the tokenizer's special prefix) and of ``tail`` (without)."""
    head_ids = list(tokenizer(head)["input_ids"])
    tail_ids = list(tokenizer(tail, add_special_tokens=False)["input_ids"]) if tail else []
    return head_ids, tail_ids


@dataclass(frozen=True)
class TokenizedChain:
    """One training row: ids, labels (-100 on the input), and the contrastive texts."""

    input_ids: list[int]
    labels: list[int]
    cl_head: str
    cl_prefix: str
    positive: str
    negatives: tuple[str, ...]


def tokenize_chain(
    tokenizer: Any, record: ChainRecord, max_length: int, append_eos: bool = True
) -> TokenizedChain | None:
    """Tokenise one chain; ``None`` when truncation to ``max_length`` leaves no target token."""
    head, tail = split_chain(record)
    head_ids, tail_ids = encode_pair(tokenizer, head, tail)
    if append_eos and tokenizer.eos_token_id is not None:
        tail_ids.append(int(tokenizer.eos_token_id))
    room = max_length - len(head_ids)
    if room <= 0 or not tail_ids:
        return None
    tail_ids = tail_ids[:room]
    return TokenizedChain(
        input_ids=head_ids + tail_ids,
        labels=[IGNORE_INDEX] * len(head_ids) + tail_ids,
        cl_head=head,
        cl_prefix=record.cl_prefix,
        positive=record.positive,
        negatives=tuple(record.negatives),
    )


class ChainDataset(Dataset[TokenizedChain]):
    """Tokenised chains; rows whose input alone fills ``max_length`` are dropped and counted."""

    def __init__(
        self,
        tokenizer: Any,
        records: Sequence[ChainRecord],
        max_length: int,
        append_eos: bool = True,
    ) -> None:
        rows = [tokenize_chain(tokenizer, r, max_length, append_eos) for r in records]
        self.rows = [row for row in rows if row is not None]
        self.dropped = len(rows) - len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> TokenizedChain:
        return self.rows[index]


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id rows into ``(ids [B, T], attention_mask [B, T])``."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


class ChainCollator:
    """Batches TokenizedChains: right padding, labels -100 on padding, texts kept as lists."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[TokenizedChain]) -> dict[str, Any]:
        input_ids, attention_mask = pad_right([r.input_ids for r in rows], self.pad_id)
        labels, _ = pad_right([r.labels for r in rows], IGNORE_INDEX)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "cl_head": [r.cl_head for r in rows],
            "cl_prefix": [r.cl_prefix for r in rows],
            "positive": [r.positive for r in rows],
            "negatives": [list(r.negatives) for r in rows],
        }


def encode_texts(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode texts on their own (no context), right-padded; an empty text becomes one EOS."""
    fallback = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    rows = []
    for text in texts:
        ids = list(tokenizer(text)["input_ids"])[:max_length]
        rows.append(ids or [int(fallback)])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else fallback
    return pad_right(rows, int(pad))


class EpochSampler(Sampler[int]):
    """A permutation of the rows that depends only on ``(seed, epoch)``: resumable data order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        """The row order of ``epoch``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm: list[int] = torch.randperm(self.size, generator=gen).tolist()
        return perm

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch))

    def __len__(self) -> int:
        return self.size


class SplitInputTokenizer:
    """A tokenizer view that encodes registered texts as ``head`` + ``tail`` token ids.

    Generation code (``detox_core.decoding.decode``) tokenises whole prompt strings; wrapping the
    tokenizer in this view makes a chain prefix ``# Text: {prompt} # Let's ...`` come out with the
    same ids as in training. Unregistered texts and every other attribute go to the wrapped
    tokenizer.
    """

    def __init__(self, tokenizer: Any, heads: dict[str, str]) -> None:
        self._tokenizer = tokenizer
        self._heads = heads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def encode_ids(self, text: str) -> list[int]:
        """Token ids of one text, split at its registered head when it has one."""
        head = self._heads.get(text)
        if head is None:
            return list(self._tokenizer(text)["input_ids"])
        head_ids, tail_ids = encode_pair(self._tokenizer, head, text[len(head) :])
        return head_ids + tail_ids

    def __call__(
        self,
        texts: str | Sequence[str],
        truncation: bool = False,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> Any:
        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else list(texts)
        rows = [self.encode_ids(t) for t in batch]
        if truncation and max_length is not None:
            left = getattr(self._tokenizer, "truncation_side", "right") == "left"
            rows = [r[-max_length:] if left else r[:max_length] for r in rows]
        return_tensors = kwargs.get("return_tensors")
        if single and return_tensors is None:
            return {"input_ids": rows[0], "attention_mask": [1] * len(rows[0])}
        return self._tokenizer.pad(
            {"input_ids": rows},
            padding=True,
            return_tensors=return_tensors,
        )
