"""A batched decode loop with a KV cache, shared by plain decoding and the contrastive decoders.

The loop runs on the device without per-step host synchronisation: finished rows keep emitting
padding, and the host checks whether every row is done only every ``sync_every`` steps. A
``StepScorer`` hook turns the model outputs of one step into next-token scores; the default hook
returns the final layer's logits (plain decoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detox_core.errors import DetoxError


class DecodeConfig(BaseModel):
    """Sampling settings shared by every decoder."""

    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = Field(20, ge=1)
    greedy: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    # Never repeat an n-gram of this generation's own tokens (the prompt is not counted, unlike
    # transformers' no_repeat_ngram_size); 0 = off.
    no_repeat_ngram: int = Field(0, ge=0)
    # End-of-sequence is not allowed before this many new tokens (transformers' min_new_tokens);
    # min_new_tokens >= max_new_tokens bans it outright, so a row ends at a stop string or length.
    min_new_tokens: int = Field(0, ge=0)
    seed: int = 0
    stop: tuple[str, ...] = ()
    max_input_tokens: int = Field(2048, ge=1)
    chat: bool = False
    sync_every: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DecodeConfig:
        return self


class StepScorer(Protocol):
    """Turns one step's model outputs into next-token scores ``[B, V]`` (float32)."""

    output_hidden_states: bool

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        """``logits`` are the final layer's last-position logits ``[B, V]``."""
        ...


@dataclass
class DecodeOutput:
    """Texts (prompt excluded, stop strings cut) and the new token ids of each row."""

    texts: list[str]
    token_ids: list[list[int]]
    stopped: list[str] = field(default_factory=list)  # "eos", "stop", or "length"


def format_prompts(tokenizer: Any, prompts: Sequence[str], chat: bool) -> list[str]:
    """Wrap prompts in the tokenizer's chat template when ``chat`` is set."""
    if not chat:
        return list(prompts)
    if getattr(tokenizer, "chat_template", None) is None:
        raise DetoxError("this tokenizer has no chat template", "drop --chat")
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every token id that ends a sequence for this model (tokenizer and generation config)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, list):
        ids.update(int(i) for i in extra)
    return sorted(ids)


def context_token_mask(
    input_ids: torch.Tensor, attention: torch.Tensor, vocab: int
) -> torch.Tensor:
    """``[B, V]`` bool: the tokens present in each row's context (padding excluded).

    A reduction (``amax``), not a plain scatter: the pad id may also be a real token of the
    row, and a scatter writing that index twice with different values would be undefined.
    """
    mask = torch.zeros(input_ids.shape[0], vocab, dtype=torch.uint8, device=input_ids.device)
    index = input_ids.clamp(min=0, max=vocab - 1)
    mask.scatter_reduce_(1, index, attention.to(torch.uint8), reduce="amax")
    return mask.bool()


def apply_repetition_penalty(
    scores: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """HF-style repetition penalty: divide positive and multiply negative scores of seen tokens.

    ``seen`` is a boolean ``[B, V]`` mask of tokens already in the context.
    """
    if penalty == 1.0:
        return scores
    penalized = torch.where(scores > 0, scores / penalty, scores * penalty)
    return torch.where(seen, penalized, scores)


def top_p_filter(scores: torch.Tensor, top_p: float, top_k: int = 0) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches ``top_p`` (and top-k)."""
    if top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p >= 1.0:
        return scores
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
    probs = torch.softmax(sorted_scores, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def repeated_ngram_mask(scores: torch.Tensor, generated: torch.Tensor, n: int) -> torch.Tensor:
    """Bool ``[B, V]`` (``V`` of ``scores``): the tokens that would repeat an ``n``-gram already in
    ``generated`` ``[B, t]`` (this generation's tokens so far). Runs on the device, no sync."""
    banned = torch.zeros(scores.shape, dtype=torch.uint8, device=scores.device)
    steps = generated.shape[1]
    if n < 1 or steps < n:
        return banned.bool()
    if n == 1:
        following = generated
        match = torch.ones_like(generated, dtype=torch.bool)
    else:
        # Window j holds tokens j .. j+n-2; the token after it is generated[:, j+n-1].
        windows = generated.unfold(1, n - 1, 1)[:, : steps - n + 1]
        match = (windows == generated[:, None, steps - n + 1 :]).all(dim=-1)
        following = generated[:, n - 1 :]
    banned.scatter_reduce_(1, following, match.to(torch.uint8), reduce="amax")
    return banned.bool()


def without_banned(
    scores: torch.Tensor, banned: torch.Tensor, fallback: torch.Tensor
) -> torch.Tensor:
    """``scores`` with the ``banned`` tokens (bool ``[B, V]``) at -inf. A row left with no allowed
    token (a scorer that allowed only banned ones, such as DDSC's head holding nothing but
    end-of-sequence) takes the ``fallback`` logits instead, with the same bans. No host sync."""
    kept = scores.masked_fill(banned, float("-inf"))
    empty = torch.isneginf(kept).all(dim=-1, keepdim=True)
    return torch.where(empty, fallback.float().masked_fill(banned, float("-inf")), kept)


def penalized(config: DecodeConfig) -> bool:
    """Whether a repetition penalty is set (without one the loop keeps no seen-token mask)."""
    return config.repetition_penalty != 1.0


def choose_next_token(
    scores: torch.Tensor, config: DecodeConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """Greedy argmax or temperature/top-p sampling over ``scores`` ``[B, V]``."""
    if config.greedy:
        return scores.argmax(dim=-1)
    if config.temperature != 1.0:
        scores = scores / config.temperature
    filtered = top_p_filter(scores, config.top_p, config.top_k)
    probs = torch.softmax(filtered, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class FinalLayerScorer:
    """Plain decoding: the final layer's logits."""

    output_hidden_states = False

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        return logits.float()


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@torch.inference_mode()
def decode(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    config: DecodeConfig,
    scorer: StepScorer | None = None,
) -> DecodeOutput:
    """Continue each prompt (a left-padded batch) and return the new text of each row."""
    if not prompts:
        return DecodeOutput([], [], [])
    scorer = scorer or FinalLayerScorer()
    device = next(model.parameters()).device
    texts = format_prompts(tokenizer, prompts, config.chat)
    enc = tokenizer(
        texts,
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=config.max_input_tokens,
    )
    input_ids = enc["input_ids"].to(device)
    attention = enc["attention_mask"].to(device)
    batch, vocab = input_ids.shape[0], int(model.config.vocab_size)
    eos_ids = eos_token_ids(model, tokenizer)
    eos = torch.tensor(eos_ids or [-1], device=device)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0])
    generator: torch.Generator | None = None
    if not config.greedy:
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed)

    # No penalty, no bookkeeping: the [B, V] mask exists only when a penalty is set.
    seen = context_token_mask(input_ids, attention, vocab) if penalized(config) else None
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    out_tokens = torch.full((batch, config.max_new_tokens), pad_id, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    # The whole attention mask, allocated once; step ``i`` reads a prefix of it (no cat per step).
    prompt_len = input_ids.shape[1]
    full_attention = torch.ones(
        batch, prompt_len + config.max_new_tokens, dtype=attention.dtype, device=device
    )
    full_attention[:, :prompt_len] = attention
    single_eos = eos[0] if eos.numel() == 1 else None

    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    step_input, past = input_ids, None
    steps_run = 0
    for step in range(config.max_new_tokens):
        outputs = model(
            input_ids=step_input,
            attention_mask=full_attention[:, : prompt_len + step],
            position_ids=position_ids,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=scorer.output_hidden_states,
        )
        past = outputs.past_key_values
        scores = scorer(outputs.logits[:, -1, :], outputs)
        if seen is not None:
            scores = apply_repetition_penalty(scores, seen, config.repetition_penalty)
        ban_eos = step < config.min_new_tokens and bool(eos_ids)
        if config.no_repeat_ngram or ban_eos:
            banned = repeated_ngram_mask(scores, out_tokens[:, :step], config.no_repeat_ngram)
            if ban_eos:
                banned.index_fill_(-1, eos, True)
            scores = without_banned(scores, banned, outputs.logits[:, -1, :])
        token = choose_next_token(scores, config, generator).masked_fill_(finished, pad_id)
        out_tokens[:, step] = token
        lengths += ~finished
        finished |= token == single_eos if single_eos is not None else torch.isin(token, eos)
        if seen is not None:
            seen.scatter_(1, token[:, None], True)
        step_input = token[:, None]
        position_ids = position_ids[:, -1:] + 1
        steps_run = step + 1
        if steps_run % config.sync_every == 0 and bool(finished.all().item()):
            break
        if config.stop and steps_run % config.sync_every == 0:
            partial = tokenizer.batch_decode(out_tokens[:, :steps_run], skip_special_tokens=True)
            stop_hit = torch.tensor(
                [any(s in t for s in config.stop) for t in partial], device=device
            )
            finished = finished | stop_hit

    token_rows = out_tokens[:, :steps_run].tolist()
    length_rows = lengths.tolist()
    eos_set = set(eos.tolist())
    result_texts, result_ids, stopped = [], [], []
    for row, n in zip(token_rows, length_rows, strict=True):
        ids = row[:n]
        reason = "length"
        if ids and ids[-1] in eos_set:
            ids = ids[:-1]
            reason = "eos"
        text = tokenizer.decode(ids, skip_special_tokens=True)
        text, hit = _cut_at_stop(text, config.stop)
        result_texts.append(text)
        result_ids.append(ids)
        stopped.append("stop" if hit else reason)
    return DecodeOutput(result_texts, result_ids, stopped)
