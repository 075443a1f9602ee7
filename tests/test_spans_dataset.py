"""Span datasets: segment labels from gold offsets and from a scorer, windows, Jigsaw sampling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from detox_cmd.spans.batching import collate, example_windows, text_windows
from detox_cmd.spans.dataset import (
    SpanDataConfig,
    build_span_examples,
    examples_from_gold_spans,
    examples_from_scorer,
    pair_labels_from_chars,
    sample_jigsaw,
    segment_texts,
    token_windows,
    tokenize_texts,
)
from detox_core.errors import DetoxError
from tiny_models import make_wordpiece_tokenizer


class WordListScorer:
    """A fake scorer: 0.9 for texts containing a listed word, 0.1 otherwise, None for ``??``."""

    name = "wordlist"
    version = "0"

    def __init__(self, words: set[str]) -> None:
        self.words = words
        self.calls: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> list[float | None]:
        self.calls.append(list(texts))
        out: list[float | None] = []
        for text in texts:
            if "?" in text:
                out.append(None)
            else:
                out.append(0.9 if set(text.lower().split()) & self.words else 0.1)
        return out


def test_gold_offsets_mark_every_pair_touching_a_toxic_word() -> None:
    text = "you are a stupid idiot ."
    tok = make_wordpiece_tokenizer()
    (example,) = examples_from_gold_spans(tok, [text], [list(range(10, 22))])  # "stupid idiot"
    assert [text[s:e] for s, e in example.offsets] == ["you", "are", "a", "stupid", "idiot", "."]
    # pairs: you-are, are-a, a-stupid, stupid-idiot, idiot-.
    assert example.pair_labels == [0, 0, 1, 1, 1]
    assert example.sentence_label == 1
    assert example.gold_chars == list(range(10, 22))


def test_gold_offsets_partial_word_and_empty_spans() -> None:
    offsets = [(0, 3), (4, 8), (9, 12)]  # three tokens
    assert pair_labels_from_chars(offsets, [5]) == [1, 1]  # inside the middle token
    assert pair_labels_from_chars(offsets, [3]) == [1, 0]  # the space between tokens 0 and 1
    assert pair_labels_from_chars(offsets, []) == [0, 0]
    tok = make_wordpiece_tokenizer()
    (example,) = examples_from_gold_spans(tok, ["we go to the park"], [[]])
    assert example.sentence_label == 0 and set(example.pair_labels) == {0}


def test_scorer_labels_segments_joined_back_via_offsets() -> None:
    text = "i hate walking, you idiot"
    tok = make_wordpiece_tokenizer()
    scorer = WordListScorer({"idiot"})
    (example,) = examples_from_scorer(tok, [text], [1], scorer, threshold=0.5)
    segments = segment_texts(text, example.offsets)
    assert "walking" in segments  # word-pieces of one word join without a space
    assert "you idiot" in segments
    expected = [int("idiot" in s.split()) for s in segments]
    assert example.pair_labels == expected and sum(expected) == 1
    assert example.sentence_label == 1 and example.source == "jigsaw"
    scored = [t for call in scorer.calls for t in call]
    assert len(scored) == len(set(scored))  # each distinct segment scored once


def test_missing_score_is_not_toxic_and_threshold_is_strict() -> None:
    class Fixed:
        name, version = "fixed", "0"

        def score(self, texts: Sequence[str]) -> list[float | None]:
            return [0.5 if "hate" in t else None for t in texts]

    tok = make_wordpiece_tokenizer()
    (example,) = examples_from_scorer(tok, ["i hate it ?"], [0], Fixed(), threshold=0.5)
    assert example.pair_labels == [0, 0, 0]
    (example,) = examples_from_scorer(tok, ["i hate it ?"], [0], Fixed(), threshold=0.4)
    assert example.pair_labels == [1, 1, 0]


def test_token_windows_cover_every_pair() -> None:
    assert token_windows(5, 10) == [(0, 5)]
    assert token_windows(0, 10) == [(0, 0)]
    windows = token_windows(23, 8)
    assert windows[0] == (0, 8) and windows[-1][1] == 23
    covered = {i for s, e in windows for i in range(s, e - 1)}
    assert covered == set(range(22))
    assert all(e - s <= 8 for s, e in windows)


def test_text_windows_frame_pairs_with_special_labels() -> None:
    ids = list(range(10, 20))
    labels = [0, 0, 1, 1, 0, 0, 0, 0, 0]
    (window,) = text_windows(ids, (2, 3), max_length=16, pair_labels=labels, sentence_label=1)
    assert window.ids == [2, *ids, 3]
    assert window.pair_labels == [0, *labels, 0]
    assert window.sentence_label == 1
    windows = text_windows(ids, (2, 3), max_length=6, pair_labels=labels, sentence_label=1)
    assert all(len(w.ids) <= 6 and len(w.pair_labels) == len(w.ids) - 1 for w in windows)
    assert [w.sentence_label for w in windows] == [int(1 in w.pair_labels) for w in windows]
    assert len(text_windows(ids, (2, 3), 6, pair_labels=labels, first_only=True)) == 1


def test_collate_pads_pairs_with_ignore_index() -> None:
    tok = make_wordpiece_tokenizer()
    examples = examples_from_gold_spans(tok, ["you idiot", "we go to the park today"], [[4], []])
    batch = collate(example_windows(examples, (2, 3), 128), pad_id=0)
    lengths = batch.attention_mask.sum(dim=1).tolist()
    assert batch.segment_labels.shape[1] == batch.input_ids.shape[1] - 1
    for row, n in enumerate(lengths):
        assert (batch.segment_labels[row, n - 1 :] == -100).all()
        assert (batch.segment_labels[row, : n - 1] != -100).all()
        assert batch.segment_labels[row, 0] == 0 and batch.segment_labels[row, n - 2] == 0
    assert batch.segment_labels[0, 1].item() == 1  # the pair (you, idiot)
    assert batch.sentence_labels.tolist() == [1, 0]


def test_sample_jigsaw_takes_what_exists_and_caps() -> None:
    rows = [(f"t{i}", 1) for i in range(5)] + [(f"c{i}", 0) for i in range(50)]
    chosen = sample_jigsaw(rows, n_toxic=9000, n_non_toxic=1000, seed=1)
    assert len(chosen) == 55
    assert sample_jigsaw(rows, 9000, 1000, seed=1) == chosen
    capped = sample_jigsaw(rows, 4, 40, seed=1, max_total=11)
    assert len(capped) == 11 and sum(label for _, label in capped) == 1


def test_build_examples_mixes_sources(tmp_path: Path) -> None:
    spans_csv = tmp_path / "spans.csv"
    spans_csv.write_text('spans,text\n"[4, 5, 6, 7, 8]",you idiot\n[],nice day\n')
    jigsaw_csv = tmp_path / "jigsaw.csv"
    jigsaw_csv.write_text("id,comment_text,toxic\na,you stupid fool,1\nb,what a lovely day,0\n")
    config = SpanDataConfig(spans=[spans_csv], jigsaw=jigsaw_csv)
    examples, summary = build_span_examples(
        make_wordpiece_tokenizer(), config, scorer=WordListScorer({"stupid"})
    )
    assert [e.source for e in examples].count("jigsaw") == 2
    assert summary.n_spans_texts == 2 and summary.n_jigsaw_texts == 2
    assert summary.n_jigsaw_toxic == 1 and summary.scorer == "wordlist@0"
    assert summary.n_toxic_segments == sum(sum(e.pair_labels) for e in examples) == 3
    with pytest.raises(DetoxError):
        build_span_examples(make_wordpiece_tokenizer(), SpanDataConfig())


def test_tokenize_texts_offsets_point_into_the_text() -> None:
    text = "What a lovely day, you idiots!"
    (tok,) = tokenize_texts(make_wordpiece_tokenizer(), [text])
    assert "[CLS]" not in tok.tokens and "[SEP]" not in tok.tokens
    assert all(text[s:e].strip() == text[s:e] and e > s for s, e in tok.offsets)
    assert "".join(text[s:e] for s, e in tok.offsets) == text.replace(" ", "")
