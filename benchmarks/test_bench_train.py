"""CMD training throughput with and without the contrastive term, and their ratio.

Both runs train the same chains (16 real chains from ``tests/fixtures/cmd_chains_real.jsonl``)
with the same settings for ``STEPS`` optimizer steps of ``BATCH`` x ``GRAD_ACCUM`` rows; the only
difference is ``use_cl``. Throughput is chain tokens per second of optimizer steps (model
loading, checkpoints and the plot excluded). The contrastive term costs an anchor sample of
``cl_anchor_tokens`` tokens per group plus one extra forward/backward over the anchor, positive
and negatives, so the ratio (with / without) is below 1.

    uv run pytest benchmarks/test_bench_train.py --benchmark-enable -s
    DETOX_BENCH_TRAIN_MODEL=/path/to/tiny uv run pytest benchmarks/test_bench_train.py ...

The model is the default (SmolLM2-135M-Instruct) unless ``DETOX_BENCH_TRAIN_MODEL`` names
another spec.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detox_cmd.training import CMDTrainConfig, CMDTrainer

CHAINS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cmd_chains_real.jsonl"
STEPS = 2
BATCH = 4
GRAD_ACCUM = 2  # 16 chains: two optimizer steps of 2 micro-batches of 4


def _throughput(model: str, data: Path, out: Path, use_cl: bool) -> float:
    config = CMDTrainConfig(
        model=model,
        data_path=data,
        output_dir=out,
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=GRAD_ACCUM,
        max_length=256,
        use_cl=use_cl,
    )
    result = CMDTrainer(config, show_progress=False).train()
    speed = result.tokens_per_second
    assert speed is not None and speed > 0
    return speed


def test_bench_train_contrastive_ratio(benchmark: Any, tmp_path: Path) -> None:
    model = os.environ.get("DETOX_BENCH_TRAIN_MODEL", "default")
    data = CHAINS
    runs = iter(range(1_000))

    def run_both() -> tuple[float, float]:
        index = next(runs)
        lm_only = _throughput(model, data, tmp_path / f"lm-{index}", use_cl=False)
        with_cl = _throughput(model, data, tmp_path / f"cl-{index}", use_cl=True)
        return lm_only, with_cl

    lm_only, with_cl = benchmark.pedantic(run_both, rounds=1, iterations=1)
    ratio = with_cl / lm_only
    benchmark.extra_info.update(
        {
            "model": model,
            "tokens_per_s_lm_only": lm_only,
            "tokens_per_s_with_cl": with_cl,
            "ratio_with_cl_over_lm_only": ratio,
        }
    )
    print(
        f"\nCMD training on {model}: {lm_only:.0f} tokens/s LM only, {with_cl:.0f} tokens/s "
        f"with the contrastive term; ratio {ratio:.2f}"
    )
    assert 0 < ratio < 10
