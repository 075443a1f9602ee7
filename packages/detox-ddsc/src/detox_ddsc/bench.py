"""Time DDSC decoding against transformers' ``generate`` and plain decoding (``detox ddsc bench``).

Four timings, interleaved in one process after a warm-up (hf, vanilla, ddsc, head, hf, ...), all
greedy on the same prompts and lengths, medians over the repeats (per decoding step):

- ``hf_generate``: transformers' ``model.generate`` (greedy, KV cache, the model's own defaults);
- ``vanilla``: ``detox_core.decoding.decode`` with the final layer's logits;
- ``ddsc``: the same loop with the DDSC step scorer;
- ``head``: only the extra ``lm_head`` rows DDSC needs (a ``[B, R, H]`` matmul per step, a plain
  ``linear`` with a fresh output);
- ``head_reused``: the same matmul into one output buffer reused every step, as DDSC does (on a
  CPU a fresh ``[B, R, V]`` output costs page faults, about 10% of the matmul at MODE-1).

``efficiency = (hf_generate + head) / ddsc``: 1.0 means that DDSC costs nothing beyond the
decoding a user already has plus the extra ``lm_head`` rows it must compute.
``efficiency_vs_detox = (vanilla + head) / ddsc`` is the older figure (against detox's own loop),
``efficiency_strict = (hf_generate + head_reused) / ddsc`` charges DDSC for the extra rows at
their cheapest, and ``plain_over_hf = vanilla / hf_generate`` compares the two plain loops.

``clock="wall"`` times wall-clock (the only meaningful clock on a GPU); ``clock="cpu"`` times the
process's CPU time, which on a CPU shared with other jobs leaves out the time spent waiting for a
core (use it with one torch thread, where CPU time is the work done).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel

from detox_core.decoding import DecodeConfig, DecodeOutput, decode
from detox_ddsc.config import DDSCConfig
from detox_ddsc.decoder import DDSCStepScorer, plan_layers
from detox_ddsc.types import Clock as Clock

BENCH_PROMPTS = (
    "The city council met on Tuesday to discuss",
    "When I was a child, my grandmother used to tell me",
    "The new library opened its doors this morning and",
    "Scientists have found that the ocean",
    "After the game, the coach said that the team",
    "In the small village at the foot of the mountains,",
    "The recipe calls for two cups of flour, a pinch of salt and",
    "Our company announced today that it will",
)


class BenchResult(BaseModel):
    """Per-token timings (milliseconds per decoding step of the whole batch) and efficiency."""

    model: str
    device: str
    threads: int
    batch: int
    layers: list[int]
    toxic_layer: int | None
    head_rows: int
    new_tokens: int
    repeats: int
    clock: str
    hf_generate_ms_per_token: float
    vanilla_ms_per_token: float
    ddsc_ms_per_token: float
    extra_head_ms_per_token: float
    extra_head_reused_ms_per_token: float
    efficiency: float
    efficiency_vs_detox: float
    efficiency_strict: float
    plain_over_hf: float


def bench_prompts(batch: int) -> list[str]:
    """``batch`` fixed prompts (cycled from a small list of neutral sentence starts)."""
    return [BENCH_PROMPTS[i % len(BENCH_PROMPTS)] for i in range(batch)]


def steps_run(result: DecodeOutput, config: DecodeConfig) -> int:
    """How many decoding steps the loop ran (it stops early only when every row hit EOS)."""
    if any(reason != "eos" for reason in result.stopped):
        return config.max_new_tokens
    longest = max(len(ids) + 1 for ids in result.token_ids)
    return min(config.max_new_tokens, math.ceil(longest / config.sync_every) * config.sync_every)


def hf_generate_steps(model: Any, tokenizer: Any, prompts: list[str], new_tokens: int) -> int:
    """transformers' greedy ``generate`` on the left-padded ``prompts``; returns the steps run."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
    return int(out.shape[1] - enc["input_ids"].shape[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, func: Callable[[], int], clock: Clock = "wall") -> float:
    """Milliseconds per step of ``func`` (which returns the number of steps it ran)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    _sync(device)
    start = now()
    steps = func()
    _sync(device)
    return (now() - start) * 1000.0 / max(steps, 1)


def run_bench(
    model: Any,
    tokenizer: Any,
    config: DDSCConfig,
    *,
    batch: int,
    new_tokens: int,
    repeats: int = 3,
    model_name: str = "",
    clock: Clock = "wall",
) -> BenchResult:
    """Time HF generate, vanilla, DDSC and the extra head rows, interleaved; return the medians."""
    decode_config = DecodeConfig(max_new_tokens=new_tokens, greedy=True)
    ddsc_config = config.model_copy(update={"decode": decode_config})
    plan = plan_layers(model, ddsc_config)
    prompts = bench_prompts(batch)
    device = next(model.parameters()).device
    weight = model.get_output_embeddings().weight
    head_input = torch.randn(
        batch, len(plan.rows), weight.shape[1], dtype=weight.dtype, device=device
    )

    def hf() -> int:
        return hf_generate_steps(model, tokenizer, prompts, new_tokens)

    def vanilla() -> int:
        return steps_run(decode(model, tokenizer, prompts, decode_config), decode_config)

    def ddsc() -> int:
        scorer = DDSCStepScorer(model, plan, ddsc_config)
        return steps_run(decode(model, tokenizer, prompts, decode_config, scorer), decode_config)

    @torch.inference_mode()
    def head() -> int:
        for _ in range(new_tokens):
            torch.nn.functional.linear(head_input, weight)
        return new_tokens

    head_out = torch.empty(
        batch, len(plan.rows), weight.shape[0], dtype=weight.dtype, device=device
    )

    @torch.inference_mode()
    def head_reused() -> int:
        for _ in range(new_tokens):
            torch.matmul(head_input, weight.T, out=head_out)
        return new_tokens

    jobs = {"hf": hf, "vanilla": vanilla, "ddsc": ddsc, "head": head, "head_reused": head_reused}
    runs: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():  # warm-up
        _timed(device, job, clock)
    for _ in range(repeats):
        for name, job in jobs.items():
            runs[name].append(_timed(device, job, clock))
    hf_ms = statistics.median(runs["hf"])
    vanilla_ms = statistics.median(runs["vanilla"])
    ddsc_ms = statistics.median(runs["ddsc"])
    head_ms = statistics.median(runs["head"])
    reused_ms = statistics.median(runs["head_reused"])
    return BenchResult(
        model=model_name,
        device=str(device),
        threads=torch.get_num_threads(),
        batch=batch,
        layers=[*plan.candidates, plan.end],
        toxic_layer=plan.toxic,
        head_rows=len(plan.rows),
        new_tokens=new_tokens,
        repeats=repeats,
        clock=clock,
        hf_generate_ms_per_token=round(hf_ms, 3),
        vanilla_ms_per_token=round(vanilla_ms, 3),
        ddsc_ms_per_token=round(ddsc_ms, 3),
        extra_head_ms_per_token=round(head_ms, 3),
        extra_head_reused_ms_per_token=round(reused_ms, 3),
        efficiency=round((hf_ms + head_ms) / ddsc_ms, 4),
        efficiency_vs_detox=round((vanilla_ms + head_ms) / ddsc_ms, 4),
        efficiency_strict=round((hf_ms + reused_ms) / ddsc_ms, 4),
        plain_over_hf=round(vanilla_ms / hf_ms, 4),
    )
