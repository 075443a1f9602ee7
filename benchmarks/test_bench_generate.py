"""detox's plain decode loop against transformers' ``generate`` on the default model.

Grid: batch 1 and 8; greedy and top-p sampling (p = 0.9, no top-k, temperature 1); 32 new tokens,
one torch thread on the CPU. Each round runs ``generate`` and ``detox_core.decoding.decode`` on
the same prompts back to back (interleaved, so both see the same machine load); the figures are
medians of the per-step times and their ratio, stored in ``extra_info`` and printed. On the CPU
they are process CPU time (with one thread, the work done; wall time on a CPU shared with other
jobs mostly measures the wait for a core), on a GPU wall time.

Target (a ratio measured in one run, not a timed assertion): detox / HF <= 1.05.

Run with ``uv run pytest benchmarks/test_bench_generate.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
import torch

from detox_core.decoding import DecodeConfig, decode
from detox_core.models import LoadedModel
from detox_ddsc.bench import bench_prompts, steps_run

NEW_TOKENS = 32
ROUNDS = 5
TARGET = 1.05


def _hf_kwargs(sampled: bool) -> dict[str, Any]:
    if sampled:
        return {"do_sample": True, "top_p": 0.9, "top_k": 0, "temperature": 1.0}
    return {"do_sample": False}


@pytest.mark.parametrize("mode", ["greedy", "top-p"])
@pytest.mark.parametrize("batch", [1, 8])
def test_bench_plain_vs_hf_generate(benchmark: Any, lm: LoadedModel, batch: int, mode: str) -> None:
    sampled = mode == "top-p"
    config = DecodeConfig(max_new_tokens=NEW_TOKENS, greedy=not sampled, top_p=0.9, seed=0)
    prompts = bench_prompts(batch)
    tok, model = lm.tokenizer, lm.model
    enc = tok(prompts, return_tensors="pt", padding=True).to(lm.device)
    times: dict[str, list[float]] = {"hf": [], "detox": []}

    def hf() -> int:
        torch.manual_seed(0)
        out = model.generate(
            **enc, max_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id, **_hf_kwargs(sampled)
        )
        return int(out.shape[1] - enc["input_ids"].shape[1])

    def detox() -> int:
        return steps_run(decode(model, tok, prompts, config), config)

    now = time.perf_counter if lm.device.type == "cuda" else time.process_time

    def one_round() -> None:
        for name, job in (("hf", hf), ("detox", detox)):
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            start = now()
            steps = job()
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((now() - start) * 1000.0 / max(steps, 1))

    one_round()  # warm-up
    times = {"hf": [], "detox": []}
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    hf_ms, detox_ms = statistics.median(times["hf"]), statistics.median(times["detox"])
    ratios = [d / h for d, h in zip(times["detox"], times["hf"], strict=True)]
    ratio = statistics.median(ratios)
    benchmark.extra_info.update(
        batch=batch,
        mode=mode,
        new_tokens=NEW_TOKENS,
        hf_generate_ms_per_step=round(hf_ms, 2),
        detox_plain_ms_per_step=round(detox_ms, 2),
        detox_over_hf=round(ratio, 4),
        clock="wall" if lm.device.type == "cuda" else "cpu",
        target=TARGET,
        meets_target=ratio <= TARGET,
    )
    print(
        f"\nbatch {batch} {mode}: HF generate {hf_ms:.1f} ms/step, detox {detox_ms:.1f} "
        f"ms/step, detox/HF {ratio:.3f} (median of per-round ratios; target <= {TARGET})"
    )
