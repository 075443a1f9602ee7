"""One DDSC step (layer selection + contrast): fused Triton kernels vs the torch eager reference.

Grid: K in {4, 31} candidates, B in {1, 8} rows, V in {32000, 49152, 128256}, bf16 logits.
On CUDA both paths are timed (the fused one after a parity check); on the CPU only the torch
reference is (the Triton interpreter is no speed measure). Target on an H100: fused at least 2x
faster than eager at K=31, B=8, V=128256 (see benchmarks/kernels_report.py for a JSON table).

Run with ``uv run pytest benchmarks/test_bench_kernels.py --benchmark-enable``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from kernels_report import (
    GRID,
    check_parity,
    fused_step,
    make_inputs,
    synchronize,
    torch_step,
)

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
POINTS = [pytest.param(k, b, v, id=f"K{k}-B{b}-V{v}") for k, b, v in GRID]


@pytest.mark.parametrize(("num_cands", "batch", "vocab"), POINTS)
def test_bench_torch_reference(benchmark: Any, num_cands: int, batch: int, vocab: int) -> None:
    x = make_inputs(num_cands, batch, vocab, DEVICE, torch.bfloat16)

    def step() -> torch.Tensor:
        out = torch_step(x)
        synchronize(DEVICE)
        return out

    rounds = 20 if CUDA else 3
    scores = benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    assert scores.shape == (batch, vocab)
    assert bool(torch.isfinite(scores).any(dim=-1).all())
    benchmark.extra_info.update(device=str(DEVICE), num_cands=num_cands, batch=batch, vocab=vocab)


@pytest.mark.skipif(not CUDA, reason="Triton is timed on CUDA only")
@pytest.mark.parametrize(("num_cands", "batch", "vocab"), POINTS)
def test_bench_fused(benchmark: Any, num_cands: int, batch: int, vocab: int) -> None:
    x = make_inputs(num_cands, batch, vocab, DEVICE, torch.bfloat16)
    parity, diff = check_parity(x)
    assert parity, f"fused step differs from the reference (max abs diff {diff})"

    def step() -> torch.Tensor:
        out = fused_step(x)
        synchronize(DEVICE)
        return out

    scores = benchmark.pedantic(step, rounds=50, iterations=1, warmup_rounds=3)
    assert scores.shape == (batch, vocab)
    benchmark.extra_info.update(device=str(DEVICE), num_cands=num_cands, batch=batch, vocab=vocab)
