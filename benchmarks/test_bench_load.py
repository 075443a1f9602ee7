"""Warm load of the default model (target: under 5 s once the GGUF has been converted).

Run with ``uv run pytest benchmarks/test_bench_load.py --benchmark-enable``.
"""

from __future__ import annotations

from typing import Any

from detox_core.models import ModelOptions, load_model, resolve_model_source


def test_warm_load_default_model(benchmark: Any) -> None:
    resolve_model_source("default")  # make sure the conversion is cached (cold load excluded)
    lm = benchmark.pedantic(
        load_model, args=("default", ModelOptions(device="cpu")), rounds=3, iterations=1
    )
    assert lm.num_layers == 30
    benchmark.extra_info["target_s"] = 5.0
    benchmark.extra_info["mean_s"] = benchmark.stats.stats.mean
