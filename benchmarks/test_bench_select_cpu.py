"""DDSC's layer selection on the CPU: numpy's exp/log against torch's, in the fused torch path.

``detox_kernels.fused_torch`` runs its big ``exp`` and ``log`` passes (over the ``[B, K, V]``
candidate logits) through numpy's SIMD loops when torch runs one thread (``_numpy_math``).
This times ``select_layers_fused`` both ways on MODE-1's shape for the default model (K = 30
candidates, the toxic layer, V = 49152; batch 1 and 8), interleaved round by round so both see
the same machine load, one torch thread, process CPU time. The figure is the median per-round
ratio numpy / torch (a ratio measured in one run, not a timed assertion; the choices agree).

Run with ``uv run pytest benchmarks/test_bench_select_cpu.py --benchmark-enable -s``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
import torch

import detox_kernels.fused_torch as fused

ROUNDS = 7
CANDIDATES = 30
VOCAB = 49152


def _inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """End, toxic and candidate logits at the scales of the default model's layers read
    without the final norm (early layers in the hundreds, the end layer a few units)."""
    gen = torch.Generator().manual_seed(batch)
    scale = torch.linspace(800.0, 60.0, CANDIDATES).view(1, CANDIDATES, 1)
    cands = torch.randn(batch, CANDIDATES, VOCAB, generator=gen) * scale
    end = torch.randn(batch, VOCAB, generator=gen) * 3.3
    toxic = torch.randn(batch, VOCAB, generator=gen) * 70.0
    return end, toxic, cands


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path; CUDA runs Triton")
@pytest.mark.parametrize("batch", [1, 8])
def test_bench_select_numpy_vs_torch_math(
    benchmark: Any, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    end, toxic, cands = _inputs(batch)
    numpy_math = fused._numpy_math
    times: dict[str, list[float]] = {"numpy": [], "torch": []}
    picks: dict[str, fused.LayerSelection] = {}

    def one_round() -> None:
        for name, chooser in (("numpy", numpy_math), ("torch", lambda *tensors: False)):
            monkeypatch.setattr(fused, "_numpy_math", chooser)
            start = time.process_time()
            with torch.inference_mode():
                picks[name] = fused.select_layers_fused(end, cands, toxic)
            times[name].append((time.process_time() - start) * 1000.0)

    one_round()  # warm-up (scratch buffers)
    times = {"numpy": [], "torch": []}
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert torch.equal(picks["numpy"].h, picks["torch"].h)
    ratio = statistics.median(n / t for n, t in zip(times["numpy"], times["torch"], strict=True))
    numpy_ms, torch_ms = statistics.median(times["numpy"]), statistics.median(times["torch"])
    benchmark.extra_info.update(
        batch=batch,
        candidates=CANDIDATES,
        vocab=VOCAB,
        numpy_math_ms=round(numpy_ms, 2),
        torch_math_ms=round(torch_ms, 2),
        numpy_over_torch=round(ratio, 4),
    )
    print(
        f"\nbatch {batch}: selection with numpy math {numpy_ms:.1f} ms, torch math "
        f"{torch_ms:.1f} ms, ratio {ratio:.3f}"
    )
