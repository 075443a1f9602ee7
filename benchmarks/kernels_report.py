"""Time one DDSC step, fused Triton kernels vs the torch eager reference, and print JSON.

The step is the layer selection (H and S per row) followed by the contrast scores, for every
(K candidates, B rows, V vocabulary) of the grid. Each row of the report has the median times
in milliseconds, the speedup, and a parity check of the fused result against the reference.
On a machine without CUDA only the torch reference is timed (the Triton interpreter is no speed
measure). Target on an H100: fused at least 2x faster at K=31, B=8, V=128256.

    uv run python benchmarks/kernels_report.py [--dtype bfloat16] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from pydantic import BaseModel

from detox_kernels.reference import LayerSelection, contrast_scores_torch, select_layers_torch

GRID: list[tuple[int, int, int]] = [
    (num_cands, batch, vocab)
    for num_cands in (4, 31)
    for batch in (1, 8)
    for vocab in (32000, 49152, 128256)
]
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class StepInputs(BaseModel, arbitrary_types_allowed=True):
    """Logits of one decoding step: end and toxic rows ``[B, V]``, candidates ``[B, K, V]``."""

    end: torch.Tensor
    cands: torch.Tensor
    toxic: torch.Tensor


class ReportRow(BaseModel):
    """Timings (median ms) and parity of one grid point."""

    num_cands: int
    batch: int
    vocab: int
    torch_ms: float
    fused_ms: float | None
    fused_select_ms: float | None
    fused_contrast_ms: float | None
    speedup: float | None
    parity: bool | None
    max_abs_diff: float | None


class Report(BaseModel):
    """The whole report."""

    device: str
    dtype: str
    repeats: int
    rows: list[ReportRow]


def make_inputs(
    num_cands: int, batch: int, vocab: int, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> StepInputs:
    """Random logits (fixed seed) with a wide enough spread for a multi-token APC head."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def logits(*shape: int) -> torch.Tensor:
        return (3.0 * torch.randn(*shape, generator=gen, device=device)).to(dtype)

    return StepInputs(
        end=logits(batch, vocab), cands=logits(batch, num_cands, vocab), toxic=logits(batch, vocab)
    )


def torch_step(x: StepInputs) -> torch.Tensor:
    """Reference step: torch eager selection, then contrast."""
    sel = select_layers_torch(x.end, x.cands, x.toxic)
    return contrast_scores_torch(x.end, x.cands, sel.h, x.toxic, sel.s)


def fused_select(x: StepInputs) -> LayerSelection:
    """The fused selection kernel alone."""
    from detox_kernels.select_kernel import select_layers_triton

    return select_layers_triton(x.end, x.cands, x.toxic)


def fused_step(x: StepInputs) -> torch.Tensor:
    """Fused step: Triton selection, then Triton contrast with the selected indices."""
    from detox_kernels.contrast_kernel import contrast_scores_triton

    sel = fused_select(x)
    return contrast_scores_triton(x.end, x.cands, sel.h, x.toxic, sel.s)


def synchronize(device: torch.device) -> None:
    """Wait for the device (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn`` in milliseconds, device work included."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def check_parity(x: StepInputs) -> tuple[bool, float]:
    """Fused vs reference: same heads and +-inf pattern, and the largest difference on the head."""
    ours, ref = fused_step(x), torch_step(x)
    same_pattern = torch.equal(torch.isfinite(ours), torch.isfinite(ref))
    head = torch.isfinite(ours) & torch.isfinite(ref)
    diff = float((ours[head] - ref[head]).abs().max()) if bool(head.any()) else 0.0
    return same_pattern and diff < 1e-3, diff


def report_row(
    num_cands: int, batch: int, vocab: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> ReportRow:
    """Time and check one grid point."""
    x = make_inputs(num_cands, batch, vocab, device, dtype)
    warmup = 3 if device.type == "cuda" else 1
    torch_ms = median_ms(lambda: torch_step(x), device, repeats, warmup)
    if device.type != "cuda":
        return ReportRow(
            num_cands=num_cands,
            batch=batch,
            vocab=vocab,
            torch_ms=torch_ms,
            fused_ms=None,
            fused_select_ms=None,
            fused_contrast_ms=None,
            speedup=None,
            parity=None,
            max_abs_diff=None,
        )
    from detox_kernels.contrast_kernel import contrast_scores_triton

    parity, diff = check_parity(x)
    fused_ms = median_ms(lambda: fused_step(x), device, repeats, warmup)
    select_ms = median_ms(lambda: fused_select(x), device, repeats, warmup)
    sel = fused_select(x)
    contrast_ms = median_ms(
        lambda: contrast_scores_triton(x.end, x.cands, sel.h, x.toxic, sel.s),
        device,
        repeats,
        warmup,
    )
    return ReportRow(
        num_cands=num_cands,
        batch=batch,
        vocab=vocab,
        torch_ms=torch_ms,
        fused_ms=fused_ms,
        fused_select_ms=select_ms,
        fused_contrast_ms=contrast_ms,
        speedup=torch_ms / fused_ms,
        parity=parity,
        max_abs_diff=diff,
    )


def parse_point(text: str) -> tuple[int, int, int]:
    """``"K,B,V"`` -> ``(K, B, V)``."""
    k, b, v = (int(n) for n in text.split(","))
    return k, b, v


def main(argv: Sequence[str] | None = None) -> int:
    """Print the JSON report for the grid (or the points named with --only K,B,V)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--repeats", type=int, default=None, help="default: 50 on CUDA, 3 on CPU")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--only", action="append", default=[], metavar="K,B,V")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    repeats = args.repeats or (50 if device.type == "cuda" else 3)
    grid = [parse_point(point) for point in args.only] or GRID
    rows = [report_row(k, b, v, device, DTYPES[args.dtype], repeats) for k, b, v in grid]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = Report(device=name, dtype=args.dtype, repeats=repeats, rows=rows)
    print(json.dumps(report.model_dump(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
