"""A faster plain-torch DDSC step for devices without Triton (the CPU).

Same results as ``reference.py`` (which defines them) up to float rounding.

``select_layers_fused`` makes far fewer passes over the ``[B, K, V]`` candidate logits than
``select_layers_torch``. With ``P`` the end (or toxic) layer's distribution, ``Q`` a candidate's,
``M = (P + Q) / 2`` and ``log P = zc_P - log sum exp(zc_P)`` (``zc`` = logits minus their max):

    sum_V M log P = (P . log P + Q . log P) / 2     (dot products: batched matmuls)
    sum_V M log Q = (P . log Q + Q . log Q) / 2
    reference JSD' = (sum_V M log M - (sum_V M log P + sum_V M log Q) / 2) / V
    true JSD      = (sum_V P log P + sum_V Q log Q) / 2 - sum_V M log M

so the only element-wise work per comparison is ``M log M`` (one ``log``), and the candidates'
softmax (one ``exp``) is shared by the end and the toxic comparison. Three more things make it
fast on a CPU: ``exp`` is floored at ``exp(-64)`` so that no subnormal float ever appears (see
``_exp``), the ``[B, K, V]`` scratch tensors are reused from call to call, and the big ``exp``
and ``log`` passes run through numpy's vectorised functions when torch runs one thread (see
``_numpy_math``).

``contrast_scores_fused`` is ``contrast_scores_torch`` with in-place updates.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from detox_kernels.reference import (
    Divergence,
    LayerSelection,
    check_contrast_terms,
    select_layers_torch,
)

TINY = torch.finfo(torch.float32).tiny  # smallest normal float32
LOG_2 = math.log(2.0)
EXP_FLOOR = -64.0  # exp(-64) = 1.6e-28


def _numpy_math(*tensors: torch.Tensor) -> bool:
    """Whether the element-wise ``exp`` / ``log`` over these tensors should run through numpy.

    numpy's float32 ``exp`` and ``log`` are SIMD loops 2-3x faster than torch's on x86 CPUs
    (AVX2 / AVX-512; measured on the [30, 49152] rows of MODE-1: log 4.4 vs 12.0 ms, exp 5.2 vs
    9.7 ms per batch of 8), and give the same values to float rounding. They run on one thread,
    so they are used only when torch also runs one intra-op thread (detox's default on machines
    with two cores or fewer); on contiguous CPU float32 tensors without autograd (zero-copy).
    """
    return torch.get_num_threads() == 1 and all(
        t.device.type == "cpu"
        and t.dtype == torch.float32
        and t.is_contiguous()
        and not t.requires_grad
        for t in tensors
    )


def _log(values: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``torch.log(values, out=out)``, through numpy when ``_numpy_math`` says so."""
    if _numpy_math(values, out):
        np.log(values.numpy(), out=out.numpy())
        return out
    return torch.log(values, out=out)


def _exp(centred: torch.Tensor, out: torch.Tensor | None = None, big: bool = False) -> torch.Tensor:
    """``exp`` of centred logits, floored at ``exp(-64)``; through numpy for the ``big``
    ``[B, K, V]`` pass when ``_numpy_math`` says so (the few reference rows stay in torch, so
    that a batch and its rows one at a time round alike).

    Early layers give logits in the thousands, whose ``exp`` underflows to subnormal numbers that
    make ``exp``, ``log`` and products 30-50x slower on x86. With the floor every later product
    stays a normal float. It adds less than ``V * 1.6e-28`` (about 1e-23) of probability mass in
    all, far below float32 resolution of any sum it enters.
    """
    floored = torch.clamp(centred, min=EXP_FLOOR, out=out)
    if big and _numpy_math(floored):
        values = floored.numpy()
        np.exp(values, out=values)
        return floored
    return floored.exp_()


class _Workspace(threading.local):
    """Per-thread scratch buffers, reused while the shapes stay the same (no page faults)."""

    def __init__(self) -> None:
        self.buffers: dict[str, tuple[tuple[object, ...], list[torch.Tensor]]] = {}

    def get(
        self, name: str, shape: tuple[int, ...], device: torch.device, count: int
    ) -> list[torch.Tensor]:
        # Tensors made in inference mode cannot be written outside it (and vice versa).
        key = (device, shape, count, torch.is_inference_mode_enabled())
        held = self.buffers.get(name)
        if held is None or held[0] != key:
            held = (key, [torch.empty(shape, device=device) for _ in range(count)])
            self.buffers[name] = held
        return held[1]


_WORKSPACE = _Workspace()


def select_layers_fused(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None = None,
    divergence: Divergence = "reference",
) -> LayerSelection:
    """``select_layers_torch`` with one shared candidate softmax and matmul dot products."""
    if divergence not in ("reference", "jsd"):
        raise ValueError(f"unknown divergence {divergence!r}")
    if toxic is not None and cands.shape[1] < 2:
        raise ValueError("the safe layer needs at least two candidate layers")
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (end, cands, toxic)
    ):  # out= buffers do not support autograd
        return select_layers_torch(end, cands, toxic, divergence)
    if cands.shape[0] == 1:
        return _select_rows(end, cands, toxic, divergence)
    # One batch row at a time: the [K, V] scratch of a row stays in the CPU's cache across the
    # dozen passes over it. Every operation is per row, so the results are the whole batch's (bit
    # for bit when V is a multiple of 16; otherwise vector loops may round the last ulp apart).
    parts = [
        _select_rows(
            end[b : b + 1],
            cands[b : b + 1],
            None if toxic is None else toxic[b : b + 1],
            divergence,
        )
        for b in range(cands.shape[0])
    ]
    div_toxic = [p.div_toxic for p in parts if p.div_toxic is not None]
    s = [p.s for p in parts if p.s is not None]
    return LayerSelection(
        torch.cat([p.h for p in parts]),
        torch.cat(s) if toxic is not None else None,
        torch.cat([p.div_end for p in parts]),
        torch.cat(div_toxic) if toxic is not None else None,
    )


def _select_rows(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None,
    divergence: Divergence,
) -> LayerSelection:
    batch, _, vocab = cands.shape
    refs = [end] if toxic is None else [end, toxic]
    n_refs = len(refs)
    # The references (end, toxic): centred logits, with a row of ones after them (so that one
    # matmul with the candidates' exp also gives the candidates' sums), and their exp.
    ref_zc1, ref_exp = _WORKSPACE.get("refs", (batch, n_refs + 1, vocab), end.device, 2)
    ref_zc = ref_zc1[:, :n_refs]
    ref_zc1[:, n_refs].fill_(1.0)
    for i, ref in enumerate(refs):
        values = ref.float()
        torch.sub(values, values.amax(dim=-1, keepdim=True), out=ref_zc[:, i])
    ref_e = _exp(ref_zc, out=ref_exp[:, :n_refs])
    ref_total = ref_e.sum(dim=-1, keepdim=True)  # [B, R, 1]
    ref_ls = ref_total.log()
    p_log_p = torch.linalg.vecdot(ref_e, ref_zc).unsqueeze(-1) / ref_total - ref_ls  # [B, R, 1]

    # The candidates: centred logits and their exp, [B, K, V] each.
    cand_zc, cand_exp, m, scratch = _WORKSPACE.get("cands", tuple(cands.shape), cands.device, 4)
    values = cands.float()
    torch.sub(values, values.amax(dim=-1, keepdim=True), out=cand_zc)
    _exp(cand_zc, out=cand_exp, big=True)
    dots = torch.matmul(cand_exp, ref_zc1.transpose(1, 2))  # [B, K, R + 1]
    cand_total = dots[..., n_refs:]  # [B, K, 1]
    cand_ls = cand_total.log()
    q_log_q = torch.mul(cand_exp, cand_zc, out=scratch).sum(dim=-1, keepdim=True)
    q_log_q = q_log_q / cand_total - cand_ls  # sum_V Q log Q, [B, K, 1]
    q_log_ref = dots[..., :n_refs] / cand_total - ref_ls.transpose(1, 2)  # sum_V Q log P
    ref_log_q = torch.matmul(cand_zc, ref_e.transpose(1, 2)) / ref_total.transpose(1, 2)
    ref_log_q = ref_log_q - cand_ls  # sum_V P log Q, [B, K, R]

    half_q_scale = 0.5 / cand_total  # [B, K, 1]
    # P/2 (+ TINY, so that log M is finite and fast where P = Q = 0; its effect is nil)
    half_p = torch.mul(ref_e, 0.5 / ref_total).add_(TINY)  # [B, R, V]
    if divergence == "jsd":  # log Q in place of the centred logits (no longer needed)
        cand_log_q = cand_zc.sub_(cand_ls)
        ref_log_p = ref_zc - ref_ls  # [B, R, V]
    divs = []
    for r in range(n_refs):
        if divergence == "jsd":
            # log M = logaddexp(log P, log Q) - log 2: finite where M underflows to 0.
            log_m = torch.logaddexp(ref_log_p[:, r : r + 1], cand_log_q, out=m).sub_(LOG_2)
            m_log_m = torch.exp(log_m, out=scratch).mul_(log_m).sum(dim=-1)  # [B, K]
            div = 0.5 * (p_log_p[:, r] + q_log_q[..., 0]) - m_log_m
        else:
            torch.addcmul(half_p[:, r : r + 1], cand_exp, half_q_scale, out=m)  # M = P/2 + Q/2
            m_log_m = _log(m, out=scratch).mul_(m).sum(dim=-1)  # [B, K]
            m_log_p = 0.5 * (p_log_p[:, r] + q_log_ref[..., r])
            m_log_q = 0.5 * (ref_log_q[..., r] + q_log_q[..., 0])
            div = (m_log_m - 0.5 * (m_log_p + m_log_q)) / vocab
        divs.append(div)
    h = divs[0].argmax(dim=-1)
    if toxic is None:
        return LayerSelection(h, None, divs[0], None)
    s = divs[1][:, 1:].argmax(dim=-1) + 1
    return LayerSelection(h, s, divs[0], divs[1])


def contrast_scores_fused(
    end: torch.Tensor,
    cands: torch.Tensor,
    h: torch.Tensor,
    toxic: torch.Tensor | None = None,
    s: torch.Tensor | None = None,
    alpha: float = 0.1,
    weight: float = 1.0,
    with_h: bool = True,
) -> torch.Tensor:
    """``contrast_scores_torch`` with in-place updates (same formula, same operation order)."""
    check_contrast_terms(toxic, s, with_h)
    rows = torch.arange(end.shape[0], device=end.device)
    log_p_end = torch.log_softmax(end.float(), dim=-1)
    threshold = log_p_end.amax(dim=-1, keepdim=True) + math.log(alpha)
    outside = log_p_end < threshold
    base = cands[rows, h].float() if with_h else torch.zeros_like(log_p_end)
    if toxic is not None and s is not None:
        base += toxic.float()
        base -= cands[rows, s].float()
    base.masked_fill_(outside, float("-inf"))
    base -= torch.logsumexp(base, dim=-1, keepdim=True)  # log q_B on the head
    base.mul_(weight)
    score = torch.sub(log_p_end, base, out=base)
    return score.masked_fill_(outside, float("-inf"))
