"""Fused Triton contrast: APC head mask and ``log p_E - weight * log q_B`` on the head.

One program per batch row. Pass 1: online log-sum-exp (and maximum) of the end row, which gives
the head threshold ``log p_E >= max log p_E + log alpha``. Pass 2: online log-sum-exp over the
head of the base logits ``z_B = z_H + z_T - z_S`` (DDSC), ``z_T - z_S`` (safety-only) or ``z_H``
(DoLa), with rows H and S
read from the candidates by per-row index (no gather is materialised). Pass 3 writes the score.
Semantics: ``detox_kernels.reference.contrast_scores_torch``.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from detox_kernels.reference import check_contrast_terms
from detox_kernels.triton_common import (
    block_size,
    check_logits,
    check_strides,
    lse_finish,
    lse_update,
    row_major,
)

GPU_BLOCK_V = 4096
GPU_NUM_WARPS = 16


@triton.jit  # type: ignore[untyped-decorator]
def _base_logits(
    cand_h: tl.tensor,
    cand_s: tl.tensor,
    toxic_row: tl.tensor,
    offs: tl.tensor,
    mask: tl.tensor,
    HAS_TOXIC: tl.constexpr,
    HAS_H: tl.constexpr,
) -> tl.tensor:
    """``z_H + z_T - z_S``, ``z_T - z_S`` (no H) or ``z_H`` for one block, in float32."""
    if HAS_H:
        base = tl.load(cand_h + offs, mask=mask, other=float("-inf")).to(tl.float32)
    else:
        base = tl.where(mask, 0.0, float("-inf"))
    if HAS_TOXIC:
        t = tl.load(toxic_row + offs, mask=mask, other=0.0).to(tl.float32)
        z_s = tl.load(cand_s + offs, mask=mask, other=0.0).to(tl.float32)
        base = (base + t) - z_s
    return base


@triton.jit  # type: ignore[untyped-decorator]
def _contrast_kernel(
    end_ptr: tl.tensor,
    cands_ptr: tl.tensor,
    toxic_ptr: tl.tensor,
    h_ptr: tl.tensor,
    s_ptr: tl.tensor,
    out_ptr: tl.tensor,
    V: int,
    stride_end: int,
    stride_cand_b: int,
    stride_cand_k: int,
    stride_toxic: int,
    stride_out: int,
    log_alpha: float,
    weight: float,
    HAS_TOXIC: tl.constexpr,
    HAS_H: tl.constexpr,
    BLOCK_V: tl.constexpr,
) -> None:
    row = tl.program_id(0).to(tl.int64)
    end_row = end_ptr + row * stride_end
    cand_h = cands_ptr + row * stride_cand_b + tl.load(h_ptr + row) * stride_cand_k
    cand_s = cand_h
    toxic_row = toxic_ptr
    if HAS_TOXIC:
        cand_s = cands_ptr + row * stride_cand_b + tl.load(s_ptr + row) * stride_cand_k
        toxic_row = toxic_ptr + row * stride_toxic
    out_row = out_ptr + row * stride_out
    lanes = tl.arange(0, BLOCK_V)

    # Pass 1: log-sum-exp and maximum of the end row -> the head threshold.
    m_e = tl.full([BLOCK_V], float("-inf"), tl.float32)
    s_e = tl.zeros([BLOCK_V], tl.float32)
    for start in range(0, V, BLOCK_V):
        offs = start + lanes
        e = tl.load(end_row + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
        m_e, s_e = lse_update(m_e, s_e, e)
    max_e, lse_e = lse_finish(m_e, s_e, 0)
    threshold = (max_e - lse_e) + log_alpha

    # Pass 2: log-sum-exp of the base logits over the head.
    m_b = tl.full([BLOCK_V], float("-inf"), tl.float32)
    s_b = tl.zeros([BLOCK_V], tl.float32)
    for start in range(0, V, BLOCK_V):
        offs = start + lanes
        mask = offs < V
        e = tl.load(end_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
        head = (e - lse_e) >= threshold
        base = _base_logits(cand_h, cand_s, toxic_row, offs, mask, HAS_TOXIC, HAS_H)
        m_b, s_b = lse_update(m_b, s_b, tl.where(head, base, float("-inf")))
    _, lse_b = lse_finish(m_b, s_b, 0)

    # Pass 3: the score on the head, -inf elsewhere.
    for start in range(0, V, BLOCK_V):
        offs = start + lanes
        mask = offs < V
        e = tl.load(end_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
        lp_e = e - lse_e
        head = lp_e >= threshold
        base = _base_logits(cand_h, cand_s, toxic_row, offs, mask, HAS_TOXIC, HAS_H)
        score = lp_e - weight * (base - lse_b)
        tl.store(out_row + offs, tl.where(head, score, float("-inf")), mask=mask)


def contrast_scores_triton(
    end: torch.Tensor,
    cands: torch.Tensor,
    h: torch.Tensor,
    toxic: torch.Tensor | None = None,
    s: torch.Tensor | None = None,
    alpha: float = 0.1,
    weight: float = 1.0,
    with_h: bool = True,
) -> torch.Tensor:
    """Fused APC head mask and contrast score ``[B, V]`` float32; same as ``contrast_scores_torch``.

    ``h`` and ``s`` are per-row candidate indices ``[B]`` (they must lie in ``[0, K)``; they are
    not bounds-checked on the device). ``toxic=None`` gives the DoLa contrast against ``z_H``.
    """
    batch, _, vocab = check_logits(end, cands, toxic)
    check_contrast_terms(toxic, s, with_h)
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    for name, index in (("h", h), ("s", s)):
        if index is not None and index.shape != (batch,):
            raise ValueError(f"{name} must have shape [{batch}], got {tuple(index.shape)}")
    end, cands = row_major(end), row_major(cands)
    toxic = row_major(toxic) if toxic is not None else None
    check_strides(end, cands, *([toxic] if toxic is not None else []))
    h_idx = h.to(device=end.device, dtype=torch.int64).contiguous()
    s_idx = s.to(device=end.device, dtype=torch.int64).contiguous() if s is not None else h_idx

    out = torch.empty(batch, vocab, dtype=torch.float32, device=end.device)
    if batch > 0:
        _contrast_kernel[(batch,)](
            end,
            cands,
            toxic if toxic is not None else end,
            h_idx,
            s_idx if toxic is not None else h_idx,
            out,
            vocab,
            end.stride(0),
            cands.stride(0),
            cands.stride(1),
            toxic.stride(0) if toxic is not None else 0,
            out.stride(0),
            math.log(alpha),
            float(weight),
            HAS_TOXIC=toxic is not None,
            HAS_H=with_h,
            BLOCK_V=block_size(vocab, end.device, GPU_BLOCK_V),
            num_warps=GPU_NUM_WARPS,
        )
    return out
