"""Parity of the fused Triton layer selection with the torch reference.

Triton interpreter on the CPU, or compiled on CUDA with ``DETOX_KERNEL_TEST_DEVICE=cuda``.

Candidates are built as mixtures ``u_k * end + (1 - u_k) * toxic`` with distinct ``u_k``, so the
hallucination layer (smallest ``u``) and the safe layer (largest ``u`` among k >= 1) are
unambiguous; exact ties come from duplicated candidate rows.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

# Chooses the Triton interpreter (CPU) or compiled kernels (CUDA) before triton is imported.
from kernel_device import on_kernel_device

pytest.importorskip("triton")

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import detox_kernels
from detox_kernels import select_kernel
from detox_kernels.reference import Divergence, select_layers_torch

select_layers_triton = on_kernel_device(select_kernel.select_layers_triton)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DIVERGENCES: tuple[Divergence, ...] = ("reference", "jsd")


def mixture_logits(
    batch: int, num_cands: int, vocab: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """end, toxic, cands and the mixing weights u [B, K] (a random order of distinct values)."""
    gen = torch.Generator().manual_seed(seed)
    end = 2.0 * torch.randn(batch, vocab, generator=gen)
    toxic = 2.0 * torch.randn(batch, vocab, generator=gen)
    levels = torch.linspace(0.0, 1.0, num_cands)
    u = torch.stack([levels[torch.randperm(num_cands, generator=gen)] for _ in range(batch)])
    noise = 0.05 * torch.randn(batch, num_cands, vocab, generator=gen)
    cands = u[..., None] * end[:, None] + (1 - u[..., None]) * toxic[:, None] + noise
    return end.to(dtype), toxic.to(dtype), cands.to(dtype), u


def assert_divergences_close(
    ours: torch.Tensor, ref: torch.Tensor, vocab: int, divergence: Divergence
) -> None:
    """Same inf pattern; finite values equal up to float32 accumulation error.

    The absolute rounding error of a sum of ``m * log m`` terms is about float32 epsilon times
    the entropy (at most log V); the reference divergence then divides by V.
    """
    assert ours.dtype == torch.float32
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    finite = torch.isfinite(ref)
    assert torch.isfinite(ours[finite]).all()
    rounding = 1e-6 * math.log(vocab + 1) / (vocab if divergence == "reference" else 1)
    scale = ref[finite].abs().max().item() if finite.any() else 0.0
    torch.testing.assert_close(ours[finite], ref[finite], rtol=1e-4, atol=1e-5 * scale + rounding)


def check_parity(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None,
    divergence: Divergence,
) -> detox_kernels.LayerSelection:
    ours = select_layers_triton(end, cands, toxic, divergence)
    ref = select_layers_torch(end, cands, toxic, divergence)
    vocab = end.shape[-1]
    assert_divergences_close(ours.div_end, ref.div_end, vocab, divergence)
    assert torch.equal(ours.h, ref.h)
    if toxic is None:
        assert ours.s is None and ours.div_toxic is None
    else:
        assert ours.div_toxic is not None and ref.div_toxic is not None
        assert_divergences_close(ours.div_toxic, ref.div_toxic, vocab, divergence)
        assert ours.s is not None and ref.s is not None
        assert torch.equal(ours.s, ref.s)
    return ours


@pytest.mark.parametrize(
    ("batch", "num_cands", "vocab", "dtype"),
    [
        (1, 2, 49153, torch.bfloat16),
        (2, 31, 32001, torch.float32),
        (8, 5, 49153, torch.float16),
        (4, 33, 1001, torch.float32),
        (64, 2, 1001, torch.bfloat16),
        (1, 4, 128256, torch.float32),
    ],
)
def test_selection_matches_reference(
    batch: int, num_cands: int, vocab: int, dtype: torch.dtype
) -> None:
    end, toxic, cands, u = mixture_logits(batch, num_cands, vocab, dtype, seed=vocab + batch)
    # By construction: H is the candidate closest to toxic, S the one closest to end (k >= 1).
    expected_h = u.argmin(dim=-1)
    expected_s = u[:, 1:].argmax(dim=-1) + 1
    for divergence in DIVERGENCES:
        ours = check_parity(end, cands, toxic, divergence)
        assert torch.equal(ours.h, expected_h)
        assert ours.s is not None and torch.equal(ours.s, expected_s)


@pytest.mark.parametrize("block_k", [1, 2, 4])
def test_candidate_tiles_of_any_size(block_k: int) -> None:
    # Several programs per batch row, the last tile padded (K = 7), blocks smaller than V.
    end, toxic, cands, u = mixture_logits(3, 7, 1001, torch.float16, seed=block_k)
    ref = select_layers_torch(end, cands, toxic)
    ours = select_layers_triton(end, cands, toxic, block_k=block_k)
    assert_divergences_close(ours.div_end, ref.div_end, 1001, "reference")
    assert ours.div_toxic is not None and ref.div_toxic is not None
    assert_divergences_close(ours.div_toxic, ref.div_toxic, 1001, "reference")
    assert torch.equal(ours.h, u.argmin(dim=-1))
    assert ours.s is not None and torch.equal(ours.s, u[:, 1:].argmax(dim=-1) + 1)


def test_without_toxic_layer_only_h() -> None:
    end, _, cands, u = mixture_logits(3, 6, 32001, torch.float16, seed=1)
    ours = check_parity(end, cands, None, "reference")
    assert torch.equal(ours.h, u.argmin(dim=-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_exact_ties_pick_the_first_index(dtype: torch.dtype) -> None:
    batch, num_cands = 4, 7
    end, toxic, cands, u = mixture_logits(batch, num_cands, 1001, dtype, seed=7)
    h_best = u.argmin(dim=-1)
    s_best = u[:, 1:].argmax(dim=-1) + 1
    expected_h, expected_s = h_best.clone(), s_best.clone()
    for row in range(batch):
        # Duplicate the best H row once before and once after it when there is room, and the
        # best S row (which never lands on index 0 or the H row).
        hb, sb = int(h_best[row]), int(s_best[row])
        free = [k for k in range(num_cands) if k not in (hb, sb)]
        copy_h, copy_s = free[0], free[-1]
        cands[row, copy_h] = cands[row, hb]
        cands[row, copy_s] = cands[row, sb]
        expected_h[row] = min(hb, copy_h)
        expected_s[row] = min(sb, copy_s)
    for divergence in DIVERGENCES:
        ours = check_parity(end, cands, toxic, divergence)
        assert torch.equal(ours.h, expected_h)
        assert ours.s is not None and torch.equal(ours.s, expected_s)
        rows = torch.arange(batch)
        assert torch.equal(ours.div_end[rows, ours.h], ours.div_end.max(dim=-1).values)


def test_shared_neg_inf_entries_stay_finite() -> None:
    end, toxic, cands, u = mixture_logits(3, 5, 32001, torch.bfloat16, seed=3)
    banned = torch.randperm(32001, generator=torch.Generator().manual_seed(0))[:500]
    for logits in (end, toxic, cands):
        logits[..., banned] = float("-inf")
    for divergence in DIVERGENCES:
        ours = check_parity(end, cands, toxic, divergence)
        assert torch.isfinite(ours.div_end).all()
        assert torch.equal(ours.h, u.argmin(dim=-1))


def test_candidate_missing_a_token_has_infinite_divergence() -> None:
    # P = 0 where M > 0 gives an infinite reference divergence; two such rows tie at +inf.
    end, toxic, cands, _ = mixture_logits(2, 6, 1001, torch.float32, seed=5)
    cands[:, 2, 10] = float("-inf")
    cands[:, 4, 500] = float("-inf")
    ours = check_parity(end, cands, toxic, "reference")
    assert torch.isinf(ours.div_end[:, [2, 4]]).all()
    assert torch.isfinite(ours.div_end[:, [0, 1, 3, 5]]).all()
    assert ours.h.tolist() == [2, 2]
    assert ours.s is not None and ours.s.tolist() == [2, 2]
    # The true JSD stays finite.
    jsd = check_parity(end, cands, toxic, "jsd")
    assert torch.isfinite(jsd.div_end).all()


def test_strided_views_match_contiguous_inputs() -> None:
    end, toxic, cands, _ = mixture_logits(3, 5, 1001, torch.float32, seed=11)
    # All hidden-state rows in one [B, R, V] tensor; candidates are every other row.
    stacked = torch.zeros(3, 11, 1001)
    stacked[:, 0:10:2] = cands
    stacked[:, 10] = end
    end_view, cands_view = stacked[:, 10], stacked[:, 0:10:2]
    assert not cands_view.is_contiguous() and not end_view.is_contiguous()
    # Candidate-major storage, and a toxic row with a non-unit vocabulary stride.
    cands_t = cands.transpose(0, 1).contiguous().transpose(0, 1)
    toxic_t = toxic.t().contiguous().t()
    plain = select_layers_triton(end, cands, toxic)
    for e, c, t in [(end_view, cands_view, toxic), (end, cands_t, toxic_t)]:
        ours = check_parity(e, c, t, "reference")
        assert torch.equal(ours.h, plain.h)
        assert ours.div_toxic is not None and plain.div_toxic is not None
        torch.testing.assert_close(ours.div_toxic, plain.div_toxic)


def test_dispatch_routes_to_triton_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    end, toxic, cands, _ = mixture_logits(2, 4, 1001, torch.float32, seed=2)
    monkeypatch.setenv("DETOX_KERNELS", "triton")
    assert detox_kernels.use_triton(end)
    calls: list[int] = []
    original = select_kernel.select_layers_triton

    def spy(*args: Any, **kwargs: Any) -> detox_kernels.LayerSelection:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(select_kernel, "select_layers_triton", spy)
    forced = on_kernel_device(detox_kernels.select_layers)(end, cands, toxic)
    assert calls == [1]
    monkeypatch.setenv("DETOX_KERNELS", "torch")
    reference = detox_kernels.select_layers(end, cands, toxic)
    assert calls == [1]
    assert torch.equal(forced.h, reference.h)
    assert forced.s is not None and reference.s is not None
    assert torch.equal(forced.s, reference.s)


def test_invalid_inputs_raise() -> None:
    end, toxic, cands, _ = mixture_logits(2, 3, 101, torch.float32, seed=0)
    with pytest.raises(ValueError, match="two candidate"):
        select_layers_triton(end, cands[:, :1], toxic)
    with pytest.raises(ValueError, match="does not match"):
        select_layers_triton(end, cands[:, :, :100], toxic)
    with pytest.raises(ValueError, match="power of two"):
        select_layers_triton(end, cands, toxic, block_k=3)
    with pytest.raises(ValueError, match="unknown divergence"):
        select_layers_triton(end, cands, toxic, "kl")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    num_cands=st.integers(2, 6),
    vocab=st.integers(2, 300),
    scale=st.floats(0.1, 8.0),
    neg_inf=st.booleans(),
    divergence=st.sampled_from(DIVERGENCES),
)
def test_random_logits_property(
    seed: int,
    batch: int,
    num_cands: int,
    vocab: int,
    scale: float,
    neg_inf: bool,
    divergence: Divergence,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    end = scale * torch.randn(batch, vocab, generator=gen)
    toxic = scale * torch.randn(batch, vocab, generator=gen)
    cands = scale * torch.randn(batch, num_cands, vocab, generator=gen)
    if neg_inf:
        for logits in (end, toxic, cands):
            logits[torch.rand(logits.shape, generator=gen) < 0.1] = float("-inf")
            logits[..., 0] = 0.0  # keep every row normalisable
    ours = select_layers_triton(end, cands, toxic, divergence)
    ref = select_layers_torch(end, cands, toxic, divergence)
    vocab = end.shape[-1]
    assert_divergences_close(ours.div_end, ref.div_end, vocab, divergence)
    assert ours.div_toxic is not None and ref.div_toxic is not None
    assert_divergences_close(ours.div_toxic, ref.div_toxic, vocab, divergence)
    # Random rows may nearly tie: a different index is fine only if its divergence ties too.
    assert ours.s is not None and ref.s is not None
    for picked, expected, div in [(ours.h, ref.h, ref.div_end), (ours.s, ref.s, ref.div_toxic)]:
        rows = torch.arange(batch)
        a, b = div[rows, picked], div[rows, expected]
        tied = (a == b) | torch.isclose(a, b, rtol=1e-4, atol=1e-9)
        assert bool(((picked == expected) | tied).all())


@pytest.mark.parametrize("scale", [40.0, 400.0])
def test_true_jsd_is_finite_for_peaked_logits(scale: float) -> None:
    # Early layers read without the final norm give logits in the hundreds: M = (P + Q) / 2
    # underflows to 0 for most of the vocabulary, and log M must not become -inf there.
    gen = torch.Generator().manual_seed(int(scale))
    end = scale * torch.randn(2, 1001, generator=gen)
    toxic = scale * torch.randn(2, 1001, generator=gen)
    cands = scale * torch.randn(2, 5, 1001, generator=gen)
    ours = select_layers_triton(end, cands, toxic, "jsd")
    ref = select_layers_torch(end, cands, toxic, "jsd")
    assert ours.div_toxic is not None and ref.div_toxic is not None
    for divs in (ours.div_end, ours.div_toxic):
        assert torch.isfinite(divs).all()
        assert float(divs.max()) <= math.log(2.0) + 1e-5
    # Nearly every divergence is log 2 here (near-ties), so compare values, not argmax indices.
    assert_divergences_close(ours.div_end, ref.div_end, 1001, "jsd")
    assert_divergences_close(ours.div_toxic, ref.div_toxic, 1001, "jsd")
