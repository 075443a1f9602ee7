"""Parity of the fused Triton contrast (APC head + DDSC/DoLa score) with the torch reference.

Runs on the CPU under the Triton interpreter, or compiled on CUDA with
``DETOX_KERNEL_TEST_DEVICE=cuda`` (see ``kernel_device``). Each end row gets a few planted high logits, so
the APC head holds several tokens; head membership must match exactly, scores up to float32
rounding.
"""

from __future__ import annotations

from typing import Any

import pytest

# Chooses the Triton interpreter (CPU) or compiled kernels (CUDA) before triton is imported.
from kernel_device import on_kernel_device

pytest.importorskip("triton")

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import detox_kernels
from detox_kernels import contrast_kernel, select_kernel
from detox_kernels.reference import contrast_scores_torch, select_layers_torch

contrast_scores_triton = on_kernel_device(contrast_kernel.contrast_scores_triton)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def step_logits(
    batch: int, num_cands: int, vocab: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """end, toxic, cands and random per-row indices h (any candidate) and s (k >= 1)."""
    gen = torch.Generator().manual_seed(seed)
    end = 2.0 * torch.randn(batch, vocab, generator=gen)
    # Plant a cluster of 16 high logits per row: the head then holds several of them.
    planted = torch.randint(0, vocab, (batch, 16), generator=gen)
    end.scatter_(1, planted, 12.0 + 4.0 * torch.rand(batch, 16, generator=gen))
    toxic = 2.0 * torch.randn(batch, vocab, generator=gen)
    cands = 2.0 * torch.randn(batch, num_cands, vocab, generator=gen)
    h = torch.randint(0, num_cands, (batch,), generator=gen)
    s = torch.randint(1, num_cands, (batch,), generator=gen)
    return end.to(dtype), toxic.to(dtype), cands.to(dtype), h, s


def assert_scores_match(ours: torch.Tensor, ref: torch.Tensor) -> None:
    """Identical head (finite entries) and infinities; scores close on the head."""
    assert ours.dtype == torch.float32 and ours.shape == ref.shape
    assert torch.equal(torch.isfinite(ours), torch.isfinite(ref))
    assert torch.equal(torch.isneginf(ours), torch.isneginf(ref))
    assert torch.equal(torch.isposinf(ours), torch.isposinf(ref))
    finite = torch.isfinite(ref)
    torch.testing.assert_close(ours[finite], ref[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("batch", "num_cands", "vocab", "dtype", "ddsc", "alpha", "weight"),
    [
        (1, 2, 49153, torch.bfloat16, True, 0.1, 1.0),
        (8, 33, 32001, torch.float32, True, 0.1, 1.0),
        (64, 3, 1001, torch.float16, False, 0.1, 1.0),
        (4, 5, 1001, torch.float32, True, 0.5, 0.0),
        (2, 31, 49153, torch.float16, False, 0.01, 0.5),
        (1, 4, 128256, torch.bfloat16, True, 0.1, 1.0),
    ],
)
def test_contrast_matches_reference(
    batch: int,
    num_cands: int,
    vocab: int,
    dtype: torch.dtype,
    ddsc: bool,
    alpha: float,
    weight: float,
) -> None:
    end, toxic, cands, h, s = step_logits(batch, num_cands, vocab, dtype, seed=vocab + batch)
    tox, safe = (toxic, s) if ddsc else (None, None)
    ours = contrast_scores_triton(end, cands, h, tox, safe, alpha, weight)
    ref = contrast_scores_torch(end, cands, h, tox, safe, alpha, weight)
    assert_scores_match(ours, ref)
    head_sizes = torch.isfinite(ours).sum(dim=-1)
    assert bool((head_sizes >= 1).all()) and int(head_sizes.max()) > 1


def test_alpha_one_keeps_only_the_top_token() -> None:
    end, toxic, cands, h, s = step_logits(6, 4, 1001, torch.float32, seed=4)
    ours = contrast_scores_triton(end, cands, h, toxic, s, alpha=1.0)
    finite = torch.isfinite(ours)
    assert finite.sum(dim=-1).tolist() == [1] * 6
    assert torch.equal(finite.float().argmax(dim=-1), end.argmax(dim=-1))
    # A one-token head has q_B = 1 there: the score is log p_E of the top token.
    rows = torch.arange(6)
    expected = torch.log_softmax(end, dim=-1).max(dim=-1).values
    torch.testing.assert_close(ours[rows, end.argmax(dim=-1)], expected)


def test_weight_zero_is_plain_log_probs_on_the_head() -> None:
    end, toxic, cands, h, s = step_logits(3, 4, 32001, torch.bfloat16, seed=8)
    ours = contrast_scores_triton(end, cands, h, toxic, s, alpha=0.1, weight=0.0)
    log_p = torch.log_softmax(end.float(), dim=-1)
    head = torch.isfinite(ours)
    torch.testing.assert_close(ours[head], log_p[head])
    threshold = log_p.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(0.1))
    assert torch.equal(head, log_p >= threshold)


def test_neg_inf_logits() -> None:
    end, toxic, cands, h, _ = step_logits(4, 5, 1001, torch.float32, seed=6)
    s = torch.where(h == 4, 1, h + 1)  # S != H, so z_H - z_S is not -inf - -inf
    end[:, 900:] = float("-inf")  # banned tokens never enter the head
    toxic[:, 950:] = float("-inf")
    top = end.argmax(dim=-1)
    rows = torch.arange(4)
    cands[rows, h, top] = float("-inf")  # base -inf on a head token: score +inf
    ours = contrast_scores_triton(end, cands, h, toxic, s)
    assert_scores_match(ours, contrast_scores_torch(end, cands, h, toxic, s))
    assert bool(torch.isposinf(ours[rows, top]).all())
    assert bool(torch.isneginf(ours[:, 900:]).all())
    dola = contrast_scores_triton(end, cands, h)
    assert_scores_match(dola, contrast_scores_torch(end, cands, h))


def test_strided_candidates_and_index_dtypes() -> None:
    end, toxic, cands, h, s = step_logits(3, 5, 1001, torch.bfloat16, seed=9)
    stacked = torch.zeros(3, 12, 1001, dtype=torch.bfloat16)
    stacked[:, 1:11:2] = cands
    stacked[:, 11] = end
    view_end, view_cands = stacked[:, 11], stacked[:, 1:11:2]
    assert not view_cands.is_contiguous()
    ours = contrast_scores_triton(
        view_end, view_cands, h.to(torch.int32), toxic.t().contiguous().t(), s.to(torch.int32)
    )
    assert_scores_match(ours, contrast_scores_torch(end, cands, h, toxic, s))


def test_fused_step_matches_reference_step() -> None:
    # Selection then contrast, with the selected per-row indices fed straight in.
    end, toxic, cands, _, _ = step_logits(5, 7, 32001, torch.bfloat16, seed=12)
    selection = on_kernel_device(select_kernel.select_layers_triton)(end, cands, toxic)
    reference = select_layers_torch(end, cands, toxic)
    assert torch.equal(selection.h, reference.h)
    assert selection.s is not None and reference.s is not None
    assert torch.equal(selection.s, reference.s)
    ours = contrast_scores_triton(end, cands, selection.h, toxic, selection.s)
    assert_scores_match(ours, contrast_scores_torch(end, cands, reference.h, toxic, reference.s))


def test_dispatch_routes_to_triton_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    end, toxic, cands, h, s = step_logits(2, 4, 1001, torch.float32, seed=2)
    calls: list[int] = []
    original = contrast_kernel.contrast_scores_triton

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(contrast_kernel, "contrast_scores_triton", spy)
    monkeypatch.setenv("DETOX_KERNELS", "triton")
    forced = on_kernel_device(detox_kernels.contrast_scores)(end, cands, h, toxic, s)
    monkeypatch.setenv("DETOX_KERNELS", "torch")
    reference = detox_kernels.contrast_scores(end, cands, h, toxic, s)
    assert calls == [1]
    assert_scores_match(forced, reference)


def test_invalid_inputs_raise() -> None:
    end, toxic, cands, h, s = step_logits(2, 3, 101, torch.float32, seed=0)
    with pytest.raises(ValueError, match="safe layer index"):
        contrast_scores_triton(end, cands, h, toxic, None)
    with pytest.raises(ValueError, match="alpha"):
        contrast_scores_triton(end, cands, h, toxic, s, alpha=0.0)
    with pytest.raises(ValueError, match="shape"):
        contrast_scores_triton(end, cands, h[:1], toxic, s)
    with pytest.raises(ValueError, match="does not match"):
        contrast_scores_triton(end, cands, h, toxic[:, :50], s)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    num_cands=st.integers(2, 6),
    vocab=st.integers(1, 300),
    scale=st.floats(0.1, 8.0),
    alpha=st.floats(1e-4, 1.0),
    weight=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    ddsc=st.booleans(),
)
def test_random_logits_property(
    seed: int,
    batch: int,
    num_cands: int,
    vocab: int,
    scale: float,
    alpha: float,
    weight: float,
    ddsc: bool,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    end = scale * torch.randn(batch, vocab, generator=gen)
    toxic = scale * torch.randn(batch, vocab, generator=gen)
    cands = scale * torch.randn(batch, num_cands, vocab, generator=gen)
    h = torch.randint(0, num_cands, (batch,), generator=gen)
    s = torch.randint(1, num_cands, (batch,), generator=gen)
    tox, safe = (toxic, s) if ddsc else (None, None)
    ours = contrast_scores_triton(end, cands, h, tox, safe, alpha, weight)
    ref = contrast_scores_torch(end, cands, h, tox, safe, alpha, weight)
    # A token within rounding of the head threshold may fall on either side; elsewhere the
    # heads agree exactly.
    log_p = torch.log_softmax(end, dim=-1)
    margin = log_p - (log_p.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(alpha)))
    clear = margin.abs() > 1e-5
    assert torch.equal(torch.isfinite(ours)[clear], torch.isfinite(ref)[clear])
    both = torch.isfinite(ours) & torch.isfinite(ref)
    torch.testing.assert_close(ours[both], ref[both], rtol=1e-5, atol=1e-5)
    assert bool(torch.isfinite(ours).any(dim=-1).all())  # the top token is always kept


@pytest.mark.parametrize(("vocab", "dtype"), [(1001, torch.float32), (49153, torch.bfloat16)])
def test_safety_only_contrast_matches_reference_and_formula(vocab: int, dtype: torch.dtype) -> None:
    from detox_kernels.fused_torch import contrast_scores_fused

    end, toxic, cands, h, s = step_logits(3, 5, vocab, dtype, seed=vocab + 2)
    ref = contrast_scores_torch(end, cands, h, toxic, s, 0.1, 1.0, with_h=False)
    assert_scores_match(contrast_scores_triton(end, cands, h, toxic, s, 0.1, 1.0, False), ref)
    assert_scores_match(contrast_scores_fused(end, cands, h, toxic, s, 0.1, 1.0, False), ref)
    # by hand: z_B = z_T - z_S, log-softmax over the head, score log p_E - log q_B
    rows = torch.arange(3)
    log_p = torch.log_softmax(end.float(), dim=-1)
    head = torch.isfinite(ref)
    base = (toxic.float() - cands[rows, s].float()).masked_fill(~head, float("-inf"))
    expected = log_p - torch.log_softmax(base, dim=-1)
    torch.testing.assert_close(ref[head], expected[head], rtol=1e-5, atol=1e-5)
    # H is not read: changing every candidate but S leaves the score unchanged
    other = cands.clone()
    keep = torch.zeros_like(other, dtype=torch.bool)
    keep[rows, s] = True
    other = torch.where(keep, other, torch.randn_like(other))
    again = contrast_scores_torch(end, other, h, toxic, s, 0.1, 1.0, with_h=False)
    torch.testing.assert_close(again[head], ref[head])
    with pytest.raises(ValueError, match="needs the toxic layer"):
        contrast_scores_torch(end, cands, h, None, None, 0.1, 1.0, with_h=False)
