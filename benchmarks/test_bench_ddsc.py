"""End-to-end DDSC decoding vs plain greedy decoding on the default model.

Grid: batch 1 and 8; MODE-1 (layers 0..30) and MODE-2 (0,2,28,29,30); 16 new tokens, greedy,
toxic layer from the shipped profile. Each point times plain decoding and DDSC decoding on the
same prompts. ``test_bench_ddsc_efficiency`` runs ``detox ddsc bench``'s measurement (32 new
tokens): transformers' ``generate``, detox's plain loop, DDSC and the extra lm_head rows,
interleaved in one run; efficiency = (HF generate + extra head rows) / DDSC (targets: >= 0.87 at
MODE-2 batch 8, >= 0.85 at MODE-1), recorded in ``extra_info``, not asserted.

Run with ``uv run pytest benchmarks/test_bench_ddsc.py --benchmark-enable``.
"""

from __future__ import annotations

from typing import Any

import pytest

from detox_core.decoding import DecodeConfig, decode
from detox_core.models import LoadedModel
from detox_ddsc import DDSCConfig, generate
from detox_ddsc.bench import Clock, bench_prompts, run_bench

NEW_TOKENS = 16
LAYERS = {"mode1": "all", "mode2": "0,2,28,29,30"}


@pytest.mark.parametrize("batch", [1, 8])
def test_bench_vanilla(benchmark: Any, lm: LoadedModel, batch: int) -> None:
    config = DecodeConfig(max_new_tokens=NEW_TOKENS, greedy=True)
    prompts = bench_prompts(batch)
    result = benchmark.pedantic(
        lambda: decode(lm.model, lm.tokenizer, prompts, config), rounds=3, warmup_rounds=1
    )
    assert len(result.texts) == batch
    benchmark.extra_info.update(batch=batch, method="vanilla", new_tokens=NEW_TOKENS)


@pytest.mark.parametrize("mode", ["mode1", "mode2"])
@pytest.mark.parametrize("batch", [1, 8])
def test_bench_ddsc(benchmark: Any, lm: LoadedModel, batch: int, mode: str) -> None:
    config = DDSCConfig(
        layers=LAYERS[mode], decode=DecodeConfig(max_new_tokens=NEW_TOKENS, greedy=True)
    )
    prompts = bench_prompts(batch)
    result = benchmark.pedantic(
        lambda: generate(lm.model, lm.tokenizer, prompts, config), rounds=3, warmup_rounds=1
    )
    assert len(result.texts) == batch
    benchmark.extra_info.update(batch=batch, method="ddsc", mode=mode, new_tokens=NEW_TOKENS)


@pytest.mark.parametrize("mode", ["mode1", "mode2"])
@pytest.mark.parametrize("batch", [1, 8])
def test_bench_ddsc_efficiency(benchmark: Any, lm: LoadedModel, batch: int, mode: str) -> None:
    """``detox ddsc bench`` in one run: HF generate, detox plain, DDSC and the extra head rows,
    interleaved (targets: efficiency >= 0.87 at MODE-2 batch 8, >= 0.85 at MODE-1)."""
    config = DDSCConfig(layers=LAYERS[mode])
    clock: Clock = "wall" if lm.device.type == "cuda" else "cpu"  # CPU time with one thread
    result = benchmark.pedantic(
        lambda: run_bench(
            lm.model, lm.tokenizer, config, batch=batch, new_tokens=32, repeats=3, clock=clock
        ),
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info.update(result.model_dump(mode="json"), mode=mode)
    print(
        f"\n{mode} batch {batch}: HF {result.hf_generate_ms_per_token:.1f}, plain "
        f"{result.vanilla_ms_per_token:.1f}, ddsc {result.ddsc_ms_per_token:.1f}, head "
        f"{result.extra_head_ms_per_token:.1f} ms/step; efficiency {result.efficiency:.3f} "
        f"(vs detox plain {result.efficiency_vs_detox:.3f}), plain/HF {result.plain_over_hf:.3f}"
    )
