"""Continuations of the (rephrased) prompts by the base model that will be trained (§2.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detox_cmd.synthesis.config import SynthesisConfig
from detox_core.decoding import DecodeConfig, decode
from detox_core.records import Score
from detox_core.scoring import ToxicityScorer, score_texts


def continuation_config(config: SynthesisConfig, seed: int) -> DecodeConfig:
    """Sampling settings of the continuations (top-p 0.9, temperature 1.0, 20 new tokens)."""
    return DecodeConfig(
        max_new_tokens=config.max_new_tokens,
        top_p=config.top_p,
        temperature=config.temperature,
        seed=seed,
    )


def sample_continuations(
    model: Any, tokenizer: Any, texts: Sequence[str], config: SynthesisConfig, seed: int
) -> list[list[str]]:
    """``config.samples`` continuations of each text, sampled in one batch seeded by ``seed``."""
    k = config.samples
    rows = [text for text in texts for _ in range(k)]
    out = decode(model, tokenizer, rows, continuation_config(config, seed))
    return [out.texts[i * k : (i + 1) * k] for i in range(len(texts))]


def score_groups(scorer: ToxicityScorer, groups: Sequence[Sequence[str]]) -> list[list[Score]]:
    """Score every continuation of every group in one scorer call."""
    flat = [text for group in groups for text in group]
    scores = score_texts(scorer, flat)
    result: list[list[Score]] = []
    cursor = 0
    for group in groups:
        result.append(scores[cursor : cursor + len(group)])
        cursor += len(group)
    return result
