"""Pieces shared by the Triton kernels: the online log-sum-exp and launch settings.

The online log-sum-exp keeps one running maximum and one running sum of exponentials per lane of
a vocabulary block, so a row is read once and no softmax of the whole row is materialised; the
lanes are combined once at the end. ``-inf`` logits are handled (a lane that saw only ``-inf``
keeps a zero sum).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# Element strides are passed to the kernels as 32-bit integers.
_MAX_STRIDE = 2**31 - 1
# Under the interpreter every Triton op is a numpy call: fewer, bigger blocks are much faster.
_INTERPRETER_MAX_BLOCK = 1 << 16
_GPU_MIN_BLOCK = 1024


@triton.jit  # type: ignore[untyped-decorator]
def lse_update(m: tl.tensor, s: tl.tensor, x: tl.tensor) -> tuple[tl.tensor, tl.tensor]:
    """One online log-sum-exp step per lane: fold block ``x`` into running max ``m``, sum ``s``.

    One exponential per element: ``d = exp(min(m, x) - max(m, x))`` rescales whichever side is
    smaller (``s * d + 1`` when ``x`` is the new maximum, ``s + d`` otherwise).
    """
    m_new = tl.maximum(m, x)
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    d = tl.exp(tl.minimum(m, x) - m_safe)
    s_new = tl.where(x > m, s * d + 1.0, s + d)
    return m_new, s_new


@triton.jit  # type: ignore[untyped-decorator]
def lse_finish(m: tl.tensor, s: tl.tensor, AXIS: tl.constexpr) -> tuple[tl.tensor, tl.tensor]:
    """Combine the lanes along ``AXIS``: returns the row maxima and the row log-sum-exps."""
    row_max = tl.max(m, axis=AXIS)
    max_safe = tl.where(row_max == float("-inf"), 0.0, row_max)
    total = tl.sum(s * tl.exp(m - tl.expand_dims(max_safe, AXIS)), axis=AXIS)
    return row_max, max_safe + tl.log(total)


def interpreting(device: torch.device) -> bool:
    """Whether the kernels run under the Triton interpreter (always so off CUDA)."""
    return device.type != "cuda" or os.environ.get("TRITON_INTERPRET", "0") == "1"


def block_size(vocab: int, device: torch.device, gpu_block: int, rows: int = 1) -> int:
    """Vocabulary block of a tile of ``rows`` rows (a power of two).

    On a GPU the tile holds about ``gpu_block`` elements (the block never below 1024, to keep
    wide vector loads) so the per-lane accumulators stay in registers; under the interpreter it
    holds up to ``2**16`` elements, so that few ops run.
    """
    if interpreting(device):
        whole_row = int(triton.next_power_of_2(max(vocab, 16)))
        return min(whole_row, max(_INTERPRETER_MAX_BLOCK // rows, 16))
    return max(gpu_block // rows, _GPU_MIN_BLOCK)


def row_major(x: torch.Tensor) -> torch.Tensor:
    """``x`` with a unit stride along the vocabulary (a copy only when needed)."""
    return x if x.stride(-1) == 1 else x.contiguous()


def check_strides(*tensors: torch.Tensor) -> None:
    """Raise when a stride does not fit the kernels' 32-bit stride arguments."""
    for tensor in tensors:
        if any(stride > _MAX_STRIDE for stride in tensor.stride()):
            raise ValueError(f"stride {tensor.stride()} too large for the Triton kernels")


def check_logits(
    end: torch.Tensor, cands: torch.Tensor, toxic: torch.Tensor | None
) -> tuple[int, int, int]:
    """Validate ``end [B, V]``, ``cands [B, K, V]``, ``toxic [B, V] | None``; return B, K, V."""
    if end.dim() != 2 or cands.dim() != 3:
        raise ValueError(
            f"expected end [B, V] and cands [B, K, V], got {tuple(end.shape)} and "
            f"{tuple(cands.shape)}"
        )
    batch, vocab = end.shape
    if cands.shape[0] != batch or cands.shape[2] != vocab:
        raise ValueError(f"cands {tuple(cands.shape)} does not match end {tuple(end.shape)}")
    if cands.shape[1] < 1:
        raise ValueError("at least one candidate layer is needed")
    if toxic is not None and toxic.shape != end.shape:
        raise ValueError(f"toxic {tuple(toxic.shape)} does not match end {tuple(end.shape)}")
    devices = {end.device, cands.device} | ({toxic.device} if toxic is not None else set())
    if len(devices) != 1:
        raise ValueError(f"all logits must be on one device, got {sorted(map(str, devices))}")
    if end.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise ValueError(
            f"the Triton kernels need CUDA tensors (got {end.device}); set TRITON_INTERPRET=1 "
            "to run them on the CPU, or DETOX_KERNELS=torch for the torch reference"
        )
    return batch, cands.shape[1], vocab
