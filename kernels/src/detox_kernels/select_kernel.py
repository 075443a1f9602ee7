"""Fused Triton layer selection: divergences of every candidate against the end and toxic rows.

One program per (batch row, tile of ``BLOCK_K`` candidates). Pass 1 streams the vocabulary in
blocks and computes the online log-sum-exps of the candidates, the end row and the toxic row;
pass 2 streams it again and accumulates the divergence sums in float32. Nothing of size
``[B, K, V]`` is materialised. The candidate tiles of one batch row are adjacent in the grid, so
the end and toxic rows they share come from the L2 cache. The per-row argmax (first index on
ties) runs on the tiny ``[B, K]`` result.
Semantics: ``detox_kernels.reference.select_layers_torch``.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from detox_kernels.reference import Divergence, LayerSelection
from detox_kernels.triton_common import (
    block_size,
    check_logits,
    check_strides,
    interpreting,
    lse_finish,
    lse_update,
    row_major,
)

GPU_BLOCK_V = 2048
GPU_MAX_BLOCK_K = 4
GPU_NUM_WARPS = 8


@functools.cache
def _sm_count(device: torch.device) -> int:
    return int(torch.cuda.get_device_properties(device).multi_processor_count)


def _default_block_k(batch: int, num_cands: int, device: torch.device) -> int:
    """Candidates per program. Under the interpreter, all of a row's (fewest programs). On a GPU,
    one, or more (sharing the end/toxic rows) while that still leaves two programs per SM."""
    if interpreting(device):
        return int(triton.next_power_of_2(num_cands))
    enough_programs = 2 * _sm_count(device)
    block_k = 1
    while block_k < GPU_MAX_BLOCK_K:
        if batch * triton.cdiv(num_cands, 2 * block_k) < enough_programs:
            break
        block_k *= 2
    return block_k


@triton.jit  # type: ignore[untyped-decorator]
def _divergence_terms(
    lp: tl.tensor, p: tl.tensor, lq: tl.tensor, q: tl.tensor, JSD: tl.constexpr
) -> tl.tensor:
    """Per-entry terms of the divergence between P and Q (0 * log 0 = 0)."""
    if JSD:
        # log M = logaddexp(lp, lq) - log 2, finite where M underflows to 0.
        hi = tl.maximum(lp, lq)
        lo = tl.minimum(lp, lq)
        log_m = hi + tl.log(1.0 + tl.exp(lo - hi)) - 0.6931471805599453
        terms = tl.where(p > 0, p * (lp - log_m), 0.0) + tl.where(q > 0, q * (lq - log_m), 0.0)
    else:
        m = 0.5 * (p + q)
        log_m = tl.log(m)
        terms = tl.where(m > 0, m * (log_m - lp), 0.0) + tl.where(m > 0, m * (log_m - lq), 0.0)
    return terms


@triton.jit  # type: ignore[untyped-decorator]
def _select_kernel(
    end_ptr: tl.tensor,
    cands_ptr: tl.tensor,
    toxic_ptr: tl.tensor,
    div_end_ptr: tl.tensor,
    div_toxic_ptr: tl.tensor,
    V: int,
    K: int,
    K_TILES: int,
    stride_end: int,
    stride_cand_b: int,
    stride_cand_k: int,
    stride_toxic: int,
    scale: float,
    HAS_TOXIC: tl.constexpr,
    JSD: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_V: tl.constexpr,
) -> None:
    pid = tl.program_id(0).to(tl.int64)
    row = pid // K_TILES
    ks = (pid % K_TILES) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = ks < K
    end_row = end_ptr + row * stride_end
    cand_rows = cands_ptr + row * stride_cand_b + ks.to(tl.int64)[:, None] * stride_cand_k
    toxic_row = toxic_ptr + row * stride_toxic
    lanes = tl.arange(0, BLOCK_V)

    # Pass 1: online log-sum-exps of the candidate tile, the end row and the toxic row.
    m_c = tl.full([BLOCK_K, BLOCK_V], float("-inf"), tl.float32)
    s_c = tl.zeros([BLOCK_K, BLOCK_V], tl.float32)
    m_e = tl.full([BLOCK_V], float("-inf"), tl.float32)
    s_e = tl.zeros([BLOCK_V], tl.float32)
    m_t = tl.full([BLOCK_V], float("-inf"), tl.float32)
    s_t = tl.zeros([BLOCK_V], tl.float32)
    for start in range(0, V, BLOCK_V):
        offs = start + lanes
        mask = offs < V
        tile_mask = k_mask[:, None] & mask[None, :]
        c = tl.load(cand_rows + offs[None, :], mask=tile_mask, other=float("-inf"))
        m_c, s_c = lse_update(m_c, s_c, c.to(tl.float32))
        e = tl.load(end_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
        m_e, s_e = lse_update(m_e, s_e, e)
        if HAS_TOXIC:
            t = tl.load(toxic_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
            m_t, s_t = lse_update(m_t, s_t, t)
    _, lse_c = lse_finish(m_c, s_c, 1)
    lse_c = tl.where(k_mask, lse_c, 0.0)[:, None]  # padding candidates: keep them finite
    _, lse_e = lse_finish(m_e, s_e, 0)
    lse_t = 0.0
    if HAS_TOXIC:
        _, lse_t = lse_finish(m_t, s_t, 0)

    # Pass 2: divergence sums of every candidate against the end row (and the toxic row).
    acc_e = tl.zeros([BLOCK_K, BLOCK_V], tl.float32)
    acc_t = tl.zeros([BLOCK_K, BLOCK_V], tl.float32)
    for start in range(0, V, BLOCK_V):
        offs = start + lanes
        mask = offs < V
        tile_mask = k_mask[:, None] & mask[None, :]
        c = tl.load(cand_rows + offs[None, :], mask=tile_mask, other=float("-inf"))
        lp_c = c.to(tl.float32) - lse_c
        p_c = tl.exp(lp_c)
        e = tl.load(end_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
        lp_e = (e - lse_e)[None, :]
        acc_e += _divergence_terms(lp_e, tl.exp(lp_e), lp_c, p_c, JSD)
        if HAS_TOXIC:
            t = tl.load(toxic_row + offs, mask=mask, other=float("-inf")).to(tl.float32)
            lp_t = (t - lse_t)[None, :]
            acc_t += _divergence_terms(lp_t, tl.exp(lp_t), lp_c, p_c, JSD)
    out = row * K + ks
    tl.store(div_end_ptr + out, scale * tl.sum(acc_e, axis=1), mask=k_mask)
    if HAS_TOXIC:
        tl.store(div_toxic_ptr + out, scale * tl.sum(acc_t, axis=1), mask=k_mask)


def select_layers_triton(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None = None,
    divergence: Divergence = "reference",
    *,
    block_k: int | None = None,
) -> LayerSelection:
    """Fused H and S selection; same results as ``select_layers_torch``.

    ``end``/``toxic`` are ``[B, V]`` and ``cands`` ``[B, K, V]`` logits (fp32, bf16 or fp16, any
    batch/candidate strides); divergences are accumulated in float32. ``block_k`` (a power of
    two) is the number of candidates per program; by default it is chosen from the device.
    """
    if divergence not in ("reference", "jsd"):
        raise ValueError(f"unknown divergence {divergence!r}")
    if block_k is not None and (block_k < 1 or block_k & (block_k - 1)):
        raise ValueError(f"block_k must be a power of two, got {block_k}")
    batch, num_cands, vocab = check_logits(end, cands, toxic)
    if toxic is not None and num_cands < 2:
        raise ValueError("the safe layer needs at least two candidate layers")
    end, cands = row_major(end), row_major(cands)
    toxic = row_major(toxic) if toxic is not None else None
    check_strides(end, cands, *([toxic] if toxic is not None else []))

    div_end = torch.empty(batch, num_cands, dtype=torch.float32, device=end.device)
    div_toxic = torch.empty_like(div_end) if toxic is not None else None
    if batch > 0:
        # The reference averages over the vocabulary; the true JSD sums (nats).
        scale = 0.5 if divergence == "jsd" else 0.5 / vocab
        if block_k is None:
            block_k = _default_block_k(batch, num_cands, end.device)
        k_tiles = triton.cdiv(num_cands, block_k)
        # Candidate tiles of one batch row are adjacent programs: they share its end/toxic rows.
        _select_kernel[(batch * k_tiles,)](
            end,
            cands,
            toxic if toxic is not None else end,
            div_end,
            div_toxic if div_toxic is not None else div_end,
            vocab,
            num_cands,
            k_tiles,
            end.stride(0),
            cands.stride(0),
            cands.stride(1),
            toxic.stride(0) if toxic is not None else 0,
            scale,
            HAS_TOXIC=toxic is not None,
            JSD=divergence == "jsd",
            BLOCK_K=block_k,
            BLOCK_V=block_size(vocab, end.device, GPU_BLOCK_V, rows=block_k),
            num_warps=GPU_NUM_WARPS,
        )
    h = div_end.argmax(dim=-1)
    if div_toxic is None:
        return LayerSelection(h, None, div_end, None)
    s = div_toxic[:, 1:].argmax(dim=-1) + 1
    return LayerSelection(h, s, div_end, div_toxic)
