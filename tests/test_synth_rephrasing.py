"""Rephrasing (METHODS §2.4): the retry loop, the causal and seq2seq rephrasers, similarity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from synth_fakes import FakeScorer, fake_similarity

from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.masking import MASK
from detox_cmd.synthesis.rephrasing import (
    EMPTY,
    NOT_SIMILAR,
    STILL_TOXIC,
    UNFILLED,
    CausalRephraser,
    PrefixRephraser,
    Seq2SeqRephraser,
    clean_rephrasing,
    fill_length,
    has_mask,
    judge,
    load_rephraser,
    rephrase_with_retries,
    stable_seed,
)
from detox_cmd.synthesis.similarity import SentenceEmbedder
from detox_core.errors import DetoxError
from tiny_models import save_tiny_bert


class ScriptedRephraser:
    """Returns the scripted outputs of each masked text, one per call."""

    name = "scripted"

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.seeds: list[int] = []

    def fill(self, masked: list[str], seed: int) -> list[str]:
        self.seeds.append(seed)
        return [self.script[m].pop(0) for m in masked]


def test_judge_order_of_failures() -> None:
    config = SynthesisConfig()
    assert judge("  ", 0.1, 0.9, config) == EMPTY
    assert judge("a <MASK> b", 0.1, 0.9, config) == UNFILLED
    assert judge("text", None, 0.9, config) == "missing_score"
    assert judge("text", 0.51, 0.9, config) == STILL_TOXIC
    assert judge("text", 0.5, 0.39, config) == NOT_SIMILAR
    assert judge("text", 0.5, 0.4, config) is None


def test_retries_until_a_rephrasing_passes() -> None:
    rephraser = ScriptedRephraser(
        {
            "a <MASK>": ["", "a stupid thing", "a nice thing"],
            "b <MASK>": ["b fine"],
        }
    )
    outcomes = rephrase_with_retries(
        [("a <MASK>", "a idiot"), ("b <MASK>", "b idiot")],
        rephraser,
        FakeScorer(clean=0.1),
        fake_similarity,
        SynthesisConfig(),
        seed=7,
    )
    a, b = outcomes
    assert a.rephrased == "a nice thing" and a.dropped is None
    assert [t.failure for t in a.attempts] == [EMPTY, STILL_TOXIC, None]
    assert a.score is not None and a.score.scorer == "fake"
    assert b.rephrased == "b fine" and len(b.attempts) == 1
    # every attempt has its own seed; only the pending text is retried
    assert len(set(rephraser.seeds)) == 3
    assert rephraser.seeds[0] == stable_seed(7, 0)


def test_drops_after_k_attempts_with_the_last_reason() -> None:
    rephraser = ScriptedRephraser({"<MASK> x": ["idiot x", "", "ok x"]})
    config = SynthesisConfig(attempts=3)
    (outcome,) = rephrase_with_retries(
        [("<MASK> x", "unrelated prompt")],
        rephraser,
        FakeScorer(clean=0.1),
        fake_similarity,
        config,
        0,
    )
    assert outcome.rephrased is None
    assert outcome.dropped == NOT_SIMILAR
    assert [t.failure for t in outcome.attempts] == [STILL_TOXIC, EMPTY, NOT_SIMILAR]


def test_similarity_is_measured_against_the_original_prompt() -> None:
    seen: list[tuple[list[str], list[str]]] = []

    def similarity(a: Any, b: Any) -> list[float]:
        seen.append((list(a), list(b)))
        return [1.0] * len(a)

    rephrase_with_retries(
        [("x <MASK>", "x original")],
        ScriptedRephraser({"x <MASK>": ["x filled"]}),
        FakeScorer(),
        similarity,
        SynthesisConfig(),
        0,
    )
    assert seen == [(["x filled"], ["x original"])]


def test_clean_rephrasing() -> None:
    assert clean_rephrasing('\n\n "You are kind."\nmore text') == "You are kind."
    assert clean_rephrasing("Rewritten: fine words") == "fine words"
    assert clean_rephrasing("Text: fine words") == "fine words"
    assert clean_rephrasing("   ") == ""


def test_masks_left_in_a_rephrasing_are_found() -> None:
    for text in ("a <MASK> b", "a <mask>", "Trump is a **MASK**", "a < MASK > b"):
        assert has_mask(text), text
        assert judge(text, 0.0, 1.0, SynthesisConfig()) == UNFILLED
    for text in ("wear a mask", "Mask of Zorro", "MASKED ball"):
        assert not has_mask(text), text


def test_prefix_rephraser_keeps_the_text_around_the_masks(tiny_lm: Any) -> None:
    rephraser = PrefixRephraser(tiny_lm.model, tiny_lm.tokenizer, tokens_per_mask=3)
    masked = ["You are a <MASK> and I <MASK> you.", "<MASK> the weather", "no mask here"]
    out = rephraser.fill(masked, seed=5)
    assert out == rephraser.fill(masked, seed=5)
    first, second, third = out
    assert first.startswith("You are a") and first.endswith(" you.")
    assert " and I" in first and not has_mask(first)
    assert second.endswith(" the weather") and MASK not in second
    assert third == "no mask here"


def test_causal_rephraser_on_a_tiny_llama(tiny_lm: Any) -> None:
    rephraser = CausalRephraser(tiny_lm.model, tiny_lm.tokenizer, name="causal:tiny")
    masked = ["You are a <MASK> and I hate you.", "The weather <MASK>"]
    a = rephraser.fill(masked, seed=3)
    b = rephraser.fill(masked, seed=3)
    assert len(a) == 2 and all(isinstance(t, str) for t in a)
    assert a == b  # the seed fixes the sampling
    assert all("\n" not in t for t in a)
    assert not rephraser.chat  # the tiny tokenizer has no chat template


def test_fill_length_is_tokens_plus_five_per_mask(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    text = "You are a <MASK> and <MASK>"
    tokens = len(tok(text, add_special_tokens=False)["input_ids"])
    assert fill_length(tok, text) == tokens + 10


def _save_tiny_bart(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=200,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["you are a nice person and the weather is fine"] * 4, trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(fast),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )
    BartForConditionalGeneration(config).save_pretrained(str(path))
    fast.save_pretrained(str(path))
    return path


def test_seq2seq_rephraser_on_a_tiny_bart(tmp_path: Path) -> None:
    path = _save_tiny_bart(tmp_path / "bart")
    rephraser = load_rephraser(f"seq2seq:{path}", lambda spec: pytest.fail("no causal LM"))
    assert isinstance(rephraser, Seq2SeqRephraser)
    masked = ["you are a <MASK> person", "the weather <MASK>"]
    a = rephraser.fill(masked, seed=1)
    assert len(a) == 2 and all(isinstance(t, str) for t in a)
    assert a == rephraser.fill(masked, seed=1)
    assert all("<mask>" not in t for t in a)  # special tokens are skipped


def test_load_rephraser_specs(tiny_lm: Any, tmp_path: Path) -> None:
    loaded: list[str] = []

    def load_lm(spec: str) -> Any:
        loaded.append(spec)
        return tiny_lm

    rephraser = load_rephraser("causal:tiny", load_lm)
    assert isinstance(rephraser, CausalRephraser) and loaded == ["tiny"]
    assert isinstance(load_rephraser("prefix:tiny", load_lm), PrefixRephraser)
    for bad in ("causal:", "gpt:x", "default"):
        with pytest.raises(DetoxError, match="bad --rephraser"):
            load_rephraser(bad, load_lm)
    with pytest.raises(DetoxError, match="no seq2seq checkpoint"):
        load_rephraser(f"seq2seq:{tmp_path}", load_lm)


def test_sentence_embedder_mean_pooling(tmp_path: Path) -> None:
    embedder = SentenceEmbedder(save_tiny_bert(tmp_path / "bert"), batch_size=2)
    texts = ["you are a stupid idiot", "what a lovely day", "we go to the market today"]
    vectors = embedder.encode(texts)
    assert vectors.shape[0] == 3
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)
    # padding does not change a text's embedding: batched equals one by one
    single = torch.cat([embedder.encode([t]) for t in texts])
    assert torch.allclose(vectors, single, atol=1e-5)
    sims = embedder.similarity(texts, [texts[0], texts[0], texts[2]])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert sims[2] == pytest.approx(1.0, abs=1e-5)
    assert sims[1] < 0.9999
    assert embedder.similarity([], []) == []
