"""Span datasets for the Segment-CNN (METHODS §2.1).

A text is split by the detector's WordPiece tokenizer into tokens; its *segments* are the
adjacent token pairs (i, i+1), and segment i covers the characters ``offsets[i][0]`` to
``offsets[i+1][1]`` (the two word-pieces and whatever lies between them). Segment labels come
from one of two sources, which can be mixed:

- SemEval-2021 toxic spans (gold character offsets): a segment is toxic when it overlaps a toxic
  character; the sentence label is 1 when the text has any toxic character.
- Jigsaw comments: each segment's text is scored by a toxicity scorer (default ``profanity``) and
  is toxic when the score is ``> threshold`` (0.5); the sentence label is the ``toxic`` column.
  The reference sampled 9,000 toxic + 1,000 non-toxic comments; we take what the file has.

Texts longer than the encoder's window are cut into overlapping windows of tokens (see
``token_windows``). Gold-span texts train on every window; Jigsaw comments on their first window
only, because their sentence label belongs to the whole comment (the reference truncated at 128).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from detox_core.data.jigsaw import read_jigsaw
from detox_core.data.toxic_spans import read_toxic_spans
from detox_core.errors import DetoxError
from detox_core.progress import progress_bar
from detox_core.scoring import ToxicityScorer, load_scorer

IGNORE_INDEX = -100
SpanSource = Literal["spans", "jigsaw"]


class TokenizedText(BaseModel):
    """A text's word-pieces without special tokens: ids, token strings, character offsets."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]


class SpanExample(BaseModel):
    """One training text with a label per adjacent token pair and a sentence label."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    pair_labels: list[int]
    token_labels: list[int]
    sentence_label: int
    source: SpanSource
    gold_chars: list[int] | None = None


class SpanDataConfig(BaseModel):
    """Where the span training data comes from and how Jigsaw comments are sampled/labelled."""

    spans: list[Path] = Field(default_factory=list)
    jigsaw: Path | None = None
    scorer: str = "profanity"
    scorer_threshold: float = 0.5
    jigsaw_toxic: int = Field(default=9000, ge=0)
    jigsaw_non_toxic: int = Field(default=1000, ge=0)
    max_jigsaw: int | None = Field(default=None, ge=1)
    seed: int = 0


class SpanDataSummary(BaseModel):
    """Counts of what went into a span dataset (stored with the trained detector)."""

    n_spans_texts: int = 0
    n_jigsaw_texts: int = 0
    n_jigsaw_toxic: int = 0
    n_segments: int = 0
    n_toxic_segments: int = 0
    scorer: str | None = None


def special_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The ids the tokenizer puts before and after a text (``[CLS]``/``[SEP]`` for BERT)."""
    ids = list(tokenizer("", add_special_tokens=True)["input_ids"])
    if len(ids) != 2:
        raise DetoxError(
            "the encoder's tokenizer must add exactly one special token before and after a text",
            "use a BERT-style encoder (e.g. all-MiniLM-L6-v2, bert-base-uncased)",
        )
    return int(ids[0]), int(ids[1])


def tokenize_texts(tokenizer: Any, texts: Sequence[str]) -> list[TokenizedText]:
    """Tokenize whole texts (no truncation, no special tokens) with character offsets."""
    if not texts:
        return []
    enc = tokenizer(
        list(texts),
        add_special_tokens=False,
        return_offsets_mapping=True,
        truncation=False,
        verbose=False,
    )
    out: list[TokenizedText] = []
    for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        out.append(
            TokenizedText(
                ids=list(ids),
                tokens=list(tokenizer.convert_ids_to_tokens(list(ids))),
                offsets=[(int(s), int(e)) for s, e in offsets],
            )
        )
    return out


def token_windows(n_tokens: int, size: int) -> list[tuple[int, int]]:
    """Token ranges ``[start, end)`` of at most ``size`` tokens covering ``n_tokens``.

    Consecutive windows overlap by half a window, so every adjacent pair lies inside at least
    one window with context on both sides (except at the text's ends).
    """
    if size < 2:
        raise ValueError("a window must hold at least two tokens")
    if n_tokens <= size:
        return [(0, n_tokens)]
    stride = max(size // 2, 1)
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, n_tokens)
        windows.append((start, end))
        if end == n_tokens:
            return windows
        start += stride


def segment_range(offsets: Sequence[tuple[int, int]], i: int) -> tuple[int, int]:
    """Character range ``[start, end)`` of segment i (tokens i and i+1 and the gap between)."""
    return offsets[i][0], offsets[i + 1][1]


def pair_labels_from_chars(
    offsets: Sequence[tuple[int, int]], toxic_chars: Sequence[int] | set[int]
) -> list[int]:
    """Label 1 for each adjacent token pair whose character range overlaps a toxic character."""
    toxic = set(toxic_chars)
    labels: list[int] = []
    for i in range(len(offsets) - 1):
        start, end = segment_range(offsets, i)
        labels.append(int(any(c in toxic for c in range(start, end))))
    return labels


def token_labels_from_chars(
    offsets: Sequence[tuple[int, int]], toxic_chars: Sequence[int] | set[int]
) -> list[int]:
    """Label 1 for each token whose characters overlap a toxic character."""
    toxic = set(toxic_chars)
    return [int(any(c in toxic for c in range(s, e))) for s, e in offsets]


def token_labels_from_pairs(pair_labels: Sequence[int]) -> list[int]:
    """Token labels from pair labels: a token is toxic when every pair it belongs to is."""
    if not pair_labels:
        return []
    n = len(pair_labels) + 1
    return [
        int(all(pair_labels[j] for j in (k - 1, k) if 0 <= j < len(pair_labels))) for k in range(n)
    ]


def segment_texts(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The text of every adjacent token pair (the word-pieces joined back via the offsets)."""
    return [text[slice(*segment_range(offsets, i))] for i in range(len(offsets) - 1)]


def pair_labels_from_scorer(
    texts: Sequence[str],
    offsets: Sequence[Sequence[tuple[int, int]]],
    scorer: ToxicityScorer,
    threshold: float = 0.5,
    batch_size: int = 4096,
) -> list[list[int]]:
    """Label each adjacent pair 1 when the scorer rates its text ``> threshold``.

    Identical segment texts are scored once; a missing score (None) counts as not toxic.
    """
    per_text = [segment_texts(t, o) for t, o in zip(texts, offsets, strict=True)]
    unique = sorted({s for segs in per_text for s in segs})
    values: dict[str, float | None] = {}
    with progress_bar() as progress:
        task = progress.add_task(f"scoring segments ({scorer.name})", total=len(unique))
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            values.update(zip(chunk, scorer.score(chunk), strict=True))
            progress.advance(task, len(chunk))
    labels: list[list[int]] = []
    for segs in per_text:
        row: list[int] = []
        for seg in segs:
            value = values[seg]
            row.append(int(value is not None and value > threshold))
        labels.append(row)
    return labels


def examples_from_gold_spans(
    tokenizer: Any, texts: Sequence[str], spans: Sequence[Sequence[int]]
) -> list[SpanExample]:
    """Span examples from texts with gold toxic character offsets (SemEval format)."""
    examples: list[SpanExample] = []
    for text, chars, tok in zip(texts, spans, tokenize_texts(tokenizer, texts), strict=True):
        examples.append(
            SpanExample(
                text=text,
                ids=tok.ids,
                offsets=tok.offsets,
                pair_labels=pair_labels_from_chars(tok.offsets, chars),
                token_labels=token_labels_from_chars(tok.offsets, chars),
                sentence_label=int(len(chars) > 0),
                source="spans",
                gold_chars=sorted(set(chars)),
            )
        )
    return examples


def examples_from_scorer(
    tokenizer: Any,
    texts: Sequence[str],
    sentence_labels: Sequence[int],
    scorer: ToxicityScorer,
    threshold: float = 0.5,
) -> list[SpanExample]:
    """Span examples whose segment labels come from a toxicity scorer (Jigsaw style)."""
    tokenized = tokenize_texts(tokenizer, texts)
    labels = pair_labels_from_scorer(texts, [t.offsets for t in tokenized], scorer, threshold)
    return [
        SpanExample(
            text=text,
            ids=tok.ids,
            offsets=tok.offsets,
            pair_labels=pair,
            token_labels=token_labels_from_pairs(pair) if pair else [0] * len(tok.ids),
            sentence_label=int(label),
            source="jigsaw",
        )
        for text, tok, pair, label in zip(texts, tokenized, labels, sentence_labels, strict=True)
    ]


def sample_jigsaw(
    rows: Sequence[tuple[str, int]],
    n_toxic: int,
    n_non_toxic: int,
    seed: int = 0,
    max_total: int | None = None,
) -> list[tuple[str, int]]:
    """Up to ``n_toxic`` toxic and ``n_non_toxic`` non-toxic comments (seeded), at most
    ``max_total`` in all (keeping the toxic share), in a seeded random order."""
    rng = random.Random(seed)
    toxic = [r for r in rows if r[1] == 1]
    clean = [r for r in rows if r[1] != 1]
    rng.shuffle(toxic)
    rng.shuffle(clean)
    take_toxic, take_clean = min(n_toxic, len(toxic)), min(n_non_toxic, len(clean))
    if max_total is not None and take_toxic + take_clean > max_total:
        share = take_toxic / (take_toxic + take_clean)
        take_toxic = round(max_total * share)
        take_clean = max_total - take_toxic
    chosen = toxic[:take_toxic] + clean[:take_clean]
    rng.shuffle(chosen)
    return chosen


def build_span_examples(
    tokenizer: Any, config: SpanDataConfig, scorer: ToxicityScorer | None = None
) -> tuple[list[SpanExample], SpanDataSummary]:
    """Read every source named in ``config`` into span examples, with a summary of counts."""
    if not config.spans and config.jigsaw is None:
        raise DetoxError("no training data given", "pass --spans CSV and/or --jigsaw CSV")
    examples: list[SpanExample] = []
    summary = SpanDataSummary()
    for path in config.spans:
        rows = read_toxic_spans(path)
        examples += examples_from_gold_spans(
            tokenizer, [r.text for r in rows], [r.spans for r in rows]
        )
        summary.n_spans_texts += len(rows)
    if config.jigsaw is not None:
        comments = read_jigsaw(config.jigsaw)
        chosen = sample_jigsaw(
            [(c.comment_text, c.toxic) for c in comments],
            config.jigsaw_toxic,
            config.jigsaw_non_toxic,
            config.seed,
            config.max_jigsaw,
        )
        scorer = scorer or load_scorer(config.scorer)
        examples += examples_from_scorer(
            tokenizer,
            [text for text, _ in chosen],
            [label for _, label in chosen],
            scorer,
            config.scorer_threshold,
        )
        summary.n_jigsaw_texts = len(chosen)
        summary.n_jigsaw_toxic = sum(label for _, label in chosen)
        summary.scorer = f"{scorer.name}@{scorer.version}"
    if not examples:
        raise DetoxError("the training data holds no texts", "check the CSV files")
    summary.n_segments = sum(len(e.pair_labels) for e in examples)
    summary.n_toxic_segments = sum(sum(e.pair_labels) for e in examples)
    return examples, summary
