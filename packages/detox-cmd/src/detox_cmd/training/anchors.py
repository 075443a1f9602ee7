"""The contrastive term's inputs and loss (METHODS §2.7): on-policy anchors and InfoNCE.

The anchor of a chain is the current model's own ``cl_anchor_tokens``-token top-p sample from
``cl_prefix`` (no gradient through the sampling, dropout off, cut at the closing `` #``). The
anchors of every micro-batch of an optimizer step are sampled together in one KV-cached decode:
the parameters do not change between those micro-batches, so this draws from the same
distribution as sampling per micro-batch, and a decode step reads the weights once whatever the
batch size. The anchor text, the positive and the negatives are then encoded by the model on
their own (no context), pooled, and compared by cosine similarity in an InfoNCE loss.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from detox_cmd.chain import CLOSING_MARKER
from detox_cmd.training.config import CMDTrainConfig
from detox_cmd.training.data import SplitInputTokenizer, encode_texts
from detox_cmd.training.losses import contrastive_loss, pool_hidden
from detox_core.decoding import DecodeConfig, decode


def sample_anchors(
    model: Any,
    tokenizer: Any,
    prefixes: list[str],
    heads: list[str],
    config: CMDTrainConfig,
    seed: int,
) -> list[str]:
    """The model's own continuations of ``prefixes`` (no gradient), cut at the closing `` #``.

    ``heads[i]`` is the ``# Text: {prompt} `` part of ``prefixes[i]``, tokenised on its own as in
    training.
    """
    split = {p: h for p, h in zip(prefixes, heads, strict=True) if p.startswith(h)}
    settings = DecodeConfig(
        max_new_tokens=config.cl_anchor_tokens,
        top_p=config.cl_anchor_top_p,
        temperature=1.0,
        seed=seed,
        stop=(CLOSING_MARKER,),
        max_input_tokens=config.max_length,
    )
    return decode(model, SplitInputTokenizer(tokenizer, split), prefixes, settings).texts


def step_anchors(
    model: Any, tokenizer: Any, batches: list[dict[str, Any]], config: CMDTrainConfig, seed: int
) -> list[list[str]]:
    """The anchors of every contrastive row of an optimizer step's micro-batches, sampled in
    one batch; one list per micro-batch, in the order of its rows with negatives.

    ``model`` is the unwrapped model; the caller puts it in eval mode around the call.
    """
    owners = [
        (micro, i)
        for micro, batch in enumerate(batches)
        for i, negs in enumerate(batch["negatives"])
        if negs
    ]
    per_batch: list[list[str]] = [[] for _ in batches]
    if not owners:
        return per_batch
    texts = sample_anchors(
        model,
        tokenizer,
        [batches[m]["cl_prefix"][i] for m, i in owners],
        [batches[m]["cl_head"][i] for m, i in owners],
        config,
        seed,
    )
    for (micro, _), text in zip(owners, texts, strict=True):
        per_batch[micro].append(text)
    return per_batch


def contrastive_term(
    model: Any,
    tokenizer: Any,
    batch: dict[str, Any],
    anchors: list[str],
    config: CMDTrainConfig,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[torch.Tensor | None, int]:
    """The InfoNCE loss of a micro-batch's rows with negatives and their number (None, 0
    without any). ``model`` is the unwrapped model; its forward runs under ``autocast()``."""
    rows = [i for i, negs in enumerate(batch["negatives"]) if negs]
    if not rows:
        return None, 0
    positives = [batch["positive"][i] for i in rows]
    negatives, owners = [], []
    for group, i in enumerate(rows):
        negatives.extend(batch["negatives"][i])
        owners.extend([group] * len(batch["negatives"][i]))
    ids, mask = encode_texts(tokenizer, anchors + positives + negatives, config.max_length)
    ids, mask = ids.to(device), mask.to(device)
    with autocast():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=1,
        )
    reps = pool_hidden(out.hidden_states[-1].float(), mask, config.cl_pooling)
    size = len(rows)
    anchor_reps = reps[:size] if config.cl_anchor_grad else reps[:size].detach()
    loss = contrastive_loss(
        anchor_reps, reps[size : 2 * size], reps[2 * size :], owners, config.cl_temperature
    )
    return loss, size
