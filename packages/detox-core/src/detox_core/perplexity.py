"""Perplexity of continuations given their prompts under a causal LM (METHODS §2.8 fluency).

Prompt and continuation are tokenized separately (the prompt with the tokenizer's special
tokens, the continuation without), so exactly the continuation's tokens are scored; prompt
tokens are context only. An empty prompt is replaced by the BOS (or EOS) token so the first
continuation token has a context. Batches are padded on the tokenizer's padding side with
position ids taken from the attention mask, so left and right padding give the same numbers.
Overall ``ppl = exp(total NLL / total continuation tokens)`` (token-weighted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from pydantic import BaseModel

from detox_core.progress import progress_bar


class PerplexityResult(BaseModel):
    """Token-weighted perplexity over all items and each item's own (None: no tokens)."""

    ppl: float
    per_item: list[float | None]
    nll_sum: float
    n_tokens: int


def _context_ids(tokenizer: Any, prompt: str) -> list[int]:
    ids: list[int] = tokenizer(prompt)["input_ids"] if prompt else []
    if not ids:
        start = (
            tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        )
        if start is None:
            raise ValueError("the tokenizer has no BOS/EOS token to stand for an empty prompt")
        ids = [int(start)]
    return ids


def _max_length(model: Any) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _encode_pairs(
    tokenizer: Any, prompts: Sequence[str], continuations: Sequence[str], max_length: int | None
) -> list[tuple[list[int], int]]:
    """Per item: the joined ids and how many trailing ids are the continuation."""
    pairs = []
    for prompt, continuation in zip(prompts, continuations, strict=True):
        context = _context_ids(tokenizer, prompt)
        target: list[int] = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if max_length is not None and len(context) + len(target) > max_length:
            target = target[: max_length - 1]
            context = context[-(max_length - len(target)) :]  # drop the prompt's oldest tokens
        pairs.append((context + target, len(target)))
    return pairs


@torch.inference_mode()
def _batch_nll(
    model: Any, items: list[tuple[list[int], int]], pad_id: int, left: bool
) -> list[float]:
    """The summed NLL of each item's continuation tokens."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    target_mask = torch.zeros((len(items), width), dtype=torch.bool)
    for row, (ids, n_target) in enumerate(items):
        start = width - len(ids) if left else 0
        end = start + len(ids)
        input_ids[row, start:end] = torch.tensor(ids)
        attention[row, start:end] = 1
        target_mask[row, end - n_target : end] = True
    input_ids, attention, target_mask = (t.to(device) for t in (input_ids, attention, target_mask))
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids).logits
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token_lp = log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    nll = -(token_lp * target_mask[:, 1:]).sum(dim=-1)
    return [float(v) for v in nll.tolist()]


def continuation_perplexity(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    continuations: Sequence[str],
    batch_size: int = 8,
    show_progress: bool = False,
) -> PerplexityResult:
    """Perplexity of each continuation given its prompt, and the token-weighted total.

    An empty continuation has no tokens: its ``per_item`` entry is None. ``ppl`` is NaN when no
    item has a token.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    pairs = _encode_pairs(tokenizer, prompts, continuations, _max_length(model))
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    sums: list[float] = [0.0] * len(pairs)
    todo = [i for i, (_, n) in enumerate(pairs) if n > 0]
    # Similar lengths in a batch waste less padding.
    todo.sort(key=lambda i: len(pairs[i][0]))
    with progress_bar() as progress:
        task = progress.add_task("perplexity", total=len(todo), visible=show_progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            values = _batch_nll(model, [pairs[i] for i in chunk], int(pad_id), left)
            for i, value in zip(chunk, values, strict=True):
                sums[i] = value
            progress.advance(task, len(chunk))
    per_item = [math.exp(sums[i] / n) if n > 0 else None for i, (_, n) in enumerate(pairs)]
    total_nll = sum(sums)
    total_tokens = sum(n for _, n in pairs)
    ppl = math.exp(total_nll / total_tokens) if total_tokens else math.nan
    return PerplexityResult(ppl=ppl, per_item=per_item, nll_sum=total_nll, n_tokens=total_tokens)
