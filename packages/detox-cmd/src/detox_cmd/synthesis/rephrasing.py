"""Filling the masks (METHODS §2.4): pluggable rephrasers and the retry loop.

Rephraser specs:
- ``causal:MODEL_SPEC`` (default ``causal:default``): an instruction to a causal LM, through its
  chat template where it has one; the first non-empty line of the answer is the rephrasing.
- ``prefix:MODEL_SPEC``: no instruction; each mask is filled by continuing the text before it
  with the causal LM (up to 5 tokens), the text after it kept as is. Suits small base models.
- ``seq2seq:PATH``: a local text2text infill model (e.g. GENIUS): each ``<MASK>`` becomes the
  model's mask token; top-p 0.9 sampling, max length = tokens + 5 per mask.

A rephrasing passes when it is non-empty, has no mask left (``<MASK>``, ``<mask>``, ``MASK``),
is not toxic (score ``<= toxic_threshold``) and its embedding cosine with the ORIGINAL prompt is
``>= similarity``. Up to ``attempts`` tries; the example is dropped with the last try's failure
(``empty``, ``unfilled``, ``missing_score``, ``still_toxic`` or ``not_similar``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import BaseModel, Field

from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.masking import MASK
from detox_cmd.synthesis.records import RephraseAttempt
from detox_cmd.synthesis.similarity import SimilarityFn
from detox_core.decoding import DecodeConfig, decode
from detox_core.errors import DetoxError
from detox_core.models import LoadedModel
from detox_core.records import Score
from detox_core.scoring import ToxicityScorer, score_texts

REPHRASE_INSTRUCTION = (
    "Rewrite the text, replacing each <MASK> with non-offensive words. Keep everything else. "
    "Reply with the rewritten text only.\nText: {masked}\nRewritten:"
)
_LEFT_MASK = re.compile(r"(?i:<\s*/?\s*mask\s*>)|\bMASK\b")
_LABEL = re.compile(r"^(rewritten|rewrite|text)\s*:\s*", re.IGNORECASE)
EMPTY, UNFILLED, MISSING_SCORE, STILL_TOXIC, NOT_SIMILAR = (
    "empty",
    "unfilled",
    "missing_score",
    "still_toxic",
    "not_similar",
)
EXTRA_TOKENS_PER_MASK = 5


class Rephraser(Protocol):
    """Fills the ``<MASK>`` spans of texts; ``seed`` fixes the sampling of one call."""

    name: str

    def fill(self, masked: list[str], seed: int) -> list[str]:
        """One rephrasing per masked text, in order."""
        ...


def stable_seed(*parts: object) -> int:
    """A seed from any values, stable across runs and machines (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def fill_length(tokenizer: Any, masked: str, mask: str = MASK) -> int:
    """The reference's generation budget: the masked text's tokens + 5 per ``mask``."""
    tokens = len(tokenizer(masked, add_special_tokens=False)["input_ids"])
    return tokens + EXTRA_TOKENS_PER_MASK * masked.count(mask)


def has_mask(text: str) -> bool:
    """True when a mask is left in the text (``<MASK>``, ``<mask>``, a bare ``MASK``)."""
    return _LEFT_MASK.search(text) is not None


def clean_rephrasing(text: str) -> str:
    """The first non-empty line, without an echoed ``Rewritten:``/``Text:`` label or quotes."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _LABEL.sub("", line).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line


class CausalRephraser:
    """Asks a causal LM to rewrite the masked text (chat template when the tokenizer has one)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "causal:default",
        top_p: float = 0.9,
        temperature: float = 1.0,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.chat = getattr(tokenizer, "chat_template", None) is not None
        self.top_p = top_p
        self.temperature = temperature

    def fill(self, masked: list[str], seed: int) -> list[str]:
        """Sample one rewrite per text (top-p, one seed for the batch)."""
        if not masked:
            return []
        budget = max(fill_length(self.tokenizer, m) for m in masked)
        config = DecodeConfig(
            max_new_tokens=max(budget, 8),
            top_p=self.top_p,
            temperature=self.temperature,
            seed=seed,
            chat=self.chat,
        )
        prompts = [REPHRASE_INSTRUCTION.format(masked=m) for m in masked]
        out = decode(self.model, self.tokenizer, prompts, config)
        return [clean_rephrasing(text) for text in out.texts]


class PrefixRephraser:
    """Fills the masks left to right by continuing the text before each one with a causal LM.

    For mask i the model continues everything up to it (original text and earlier fills) for
    ``tokens_per_mask`` tokens (the first line of the sample is the fill); the text after the mask
    is kept as it is. No instruction following is needed, so small base models work.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str = "prefix:default",
        top_p: float = 0.9,
        temperature: float = 1.0,
        tokens_per_mask: int = EXTRA_TOKENS_PER_MASK,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.top_p = top_p
        self.temperature = temperature
        self.tokens_per_mask = tokens_per_mask

    def fill(self, masked: list[str], seed: int) -> list[str]:
        """Sample one fill per mask, all texts' i-th masks in one batch."""
        pieces = [text.split(MASK) for text in masked]
        done = [parts[0] for parts in pieces]
        start = self.tokenizer.bos_token or self.tokenizer.eos_token or ""
        for i in range(1, max((len(p) for p in pieces), default=1)):
            rows = [r for r, parts in enumerate(pieces) if i < len(parts)]
            contexts = [done[r].rstrip() or start for r in rows]
            config = DecodeConfig(
                max_new_tokens=self.tokens_per_mask,
                top_p=self.top_p,
                temperature=self.temperature,
                seed=stable_seed(seed, i),
            )
            out = decode(self.model, self.tokenizer, contexts, config)
            for r, fill in zip(rows, out.texts, strict=True):
                fill = fill.split("\n", 1)[0].rstrip()
                left = done[r].rstrip()
                if left != done[r] and fill and not fill[0].isspace():
                    fill = " " + fill
                done[r] = left + fill + pieces[r][i]
        return [text.strip() for text in done]


class Seq2SeqRephraser:
    """A text2text infill model: ``<MASK>`` becomes its mask token, top-p 0.9 sampling."""

    def __init__(self, path: str | Path, device: str = "cpu", top_p: float = 0.9) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        source = Path(path).expanduser()
        if not (source / "config.json").exists():
            raise DetoxError(
                f"no seq2seq checkpoint in {path}", "use seq2seq:DIR with a local model directory"
            )
        self.name = f"seq2seq:{path}"
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(source))
        if self.tokenizer.mask_token is None:
            raise DetoxError(f"the tokenizer in {path} has no mask token", "use an infill model")
        self.model: Any = AutoModelForSeq2SeqLM.from_pretrained(str(source))
        self.model.to(device)
        self.model.eval()
        self.device = torch.device(device)
        self.top_p = top_p

    @torch.inference_mode()
    def fill(self, masked: list[str], seed: int) -> list[str]:
        """Sample one infill per text; max length = tokens + 5 per mask."""
        if not masked:
            return []
        texts = [m.replace(MASK, str(self.tokenizer.mask_token)) for m in masked]
        mask = str(self.tokenizer.mask_token)
        # + 2: the decoder's start and end tokens count towards max_length.
        max_length = max(fill_length(self.tokenizer, t, mask) + 2 for t in texts)
        enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            out = self.model.generate(
                **enc.to(self.device), do_sample=True, top_p=self.top_p, max_length=max_length
            )
        decoded = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [text.strip() for text in decoded]


def load_rephraser(
    spec: str, load_lm: Callable[[str], LoadedModel], device: str = "cpu"
) -> Rephraser:
    """Build the rephraser named by ``spec``; ``load_lm`` loads (or reuses) a causal LM."""
    kind, _, target = spec.partition(":")
    if kind == "causal" and target:
        lm = load_lm(target)
        return CausalRephraser(lm.model, lm.tokenizer, name=spec)
    if kind == "prefix" and target:
        lm = load_lm(target)
        return PrefixRephraser(lm.model, lm.tokenizer, name=spec)
    if kind == "seq2seq" and target:
        return Seq2SeqRephraser(target, device=device)
    raise DetoxError(
        f"bad --rephraser {spec!r}", "use causal:MODEL_SPEC, prefix:MODEL_SPEC or seq2seq:PATH"
    )


class RephraseOutcome(BaseModel):
    """The accepted rephrasing (or the drop reason) and every attempt made."""

    rephrased: str | None = None
    score: Score | None = None
    similarity: float | None = None
    dropped: str | None = None
    attempts: list[RephraseAttempt] = Field(default_factory=list)


def judge(
    text: str, toxicity: float | None, similarity: float | None, config: SynthesisConfig
) -> str | None:
    """Why a rephrasing fails (``None`` when it passes)."""
    if not text.strip():
        return EMPTY
    if has_mask(text):
        return UNFILLED
    if toxicity is None:
        return MISSING_SCORE
    if toxicity > config.toxic_threshold:
        return STILL_TOXIC
    if similarity is None or similarity < config.similarity:
        return NOT_SIMILAR
    return None


def rephrase_with_retries(
    items: Sequence[tuple[str, str]],
    rephraser: Rephraser,
    scorer: ToxicityScorer,
    similarity: SimilarityFn,
    config: SynthesisConfig,
    seed: int,
) -> list[RephraseOutcome]:
    """Fill each ``(masked, original_prompt)`` item, retrying failures up to ``attempts`` times.

    Attempt ``a`` of the batch samples with ``stable_seed(seed, a)``.
    """
    outcomes = [RephraseOutcome() for _ in items]
    pending = list(range(len(items)))
    for attempt in range(config.attempts):
        if not pending:
            break
        texts = rephraser.fill([items[i][0] for i in pending], stable_seed(seed, attempt))
        scores = score_texts(scorer, texts)
        checkable = [k for k, text in enumerate(texts) if text.strip() and not has_mask(text)]
        sims: dict[int, float] = {}
        if checkable:
            values = similarity(
                [texts[k] for k in checkable], [items[pending[k]][1] for k in checkable]
            )
            sims = dict(zip(checkable, values, strict=True))
        still: list[int] = []
        for k, index in enumerate(pending):
            failure = judge(texts[k], scores[k].value, sims.get(k), config)
            outcome = outcomes[index]
            outcome.attempts.append(
                RephraseAttempt(
                    text=texts[k], toxicity=scores[k], similarity=sims.get(k), failure=failure
                )
            )
            if failure is None:
                outcome.rephrased, outcome.score, outcome.similarity = texts[k], scores[k], sims[k]
            else:
                outcome.dropped = failure
                still.append(index)
        pending = still
    for outcome in outcomes:
        if outcome.rephrased is not None:
            outcome.dropped = None
    return outcomes
