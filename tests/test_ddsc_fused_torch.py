"""The faster plain-torch DDSC path (detox_kernels.fused_torch) against the torch reference."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import detox_kernels
from detox_kernels.fused_torch import contrast_scores_fused, select_layers_fused
from detox_kernels.reference import contrast_scores_torch, select_layers_torch


def logits(batch: int, k: int, vocab: int, scale: float, seed: int) -> tuple[torch.Tensor, ...]:
    """End, toxic and candidate logits; candidate 1 is close to the end layer, the rest random.

    ``scale`` in the hundreds mimics early layers read without the final norm, whose softmax
    underflows to zero (or subnormals) for most of the vocabulary.
    """
    gen = torch.Generator().manual_seed(seed)
    end = torch.randn(batch, vocab, generator=gen) * scale
    toxic = torch.randn(batch, vocab, generator=gen) * scale
    cands = torch.randn(batch, k, vocab, generator=gen) * scale
    cands[:, 1] = end + 0.2 * scale * torch.randn(batch, vocab, generator=gen)
    return end, toxic, cands


# The true JSD is a difference of sums over the vocabulary in float32: the two paths agree to a
# few ulps of log V (about 1e-6), which differs between CPUs and BLAS builds, so the tolerance is
# set well above that rather than at it.
JSD_ATOL = 5e-5
# The reference divergence averages over V: its rounding is about 1e-6 * log V / V.
REF_ATOL = 1e-5 / 500


@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0, 400.0])
@pytest.mark.parametrize("with_toxic", [True, False])
def test_reference_divergence_matches(scale: float, with_toxic: bool) -> None:
    end, toxic, cands = logits(3, 5, 2003, scale, seed=int(scale))
    t = toxic if with_toxic else None
    ours = select_layers_fused(end, cands, t, "reference")
    ref = select_layers_torch(end, cands, t, "reference")
    torch.testing.assert_close(ours.div_end, ref.div_end, rtol=1e-4, atol=REF_ATOL)
    assert torch.equal(ours.h, ref.h)
    if with_toxic:
        assert ours.div_toxic is not None and ref.div_toxic is not None
        torch.testing.assert_close(ours.div_toxic, ref.div_toxic, rtol=1e-4, atol=REF_ATOL)
        assert ours.s is not None and ref.s is not None
        assert torch.equal(ours.s, ref.s)
    else:
        assert ours.s is None and ours.div_toxic is None


@pytest.mark.parametrize("scale", [0.5, 3.0, 40.0, 400.0])
def test_true_jsd_matches(scale: float) -> None:
    end, toxic, cands = logits(2, 4, 1001, scale, seed=7)
    ours = select_layers_fused(end, cands, toxic, "jsd")
    ref = select_layers_torch(end, cands, toxic, "jsd")
    assert ours.div_toxic is not None and ref.div_toxic is not None
    for divs in (ours.div_end, ref.div_end, ours.div_toxic, ref.div_toxic):
        # finite and bounded by log 2 even where M underflows (peaked logits)
        assert bool(torch.isfinite(divs).all())
        assert float(divs.max()) <= math.log(2.0) + 1e-5
        assert float(divs.min()) >= -1e-5
    torch.testing.assert_close(ours.div_end, ref.div_end, rtol=1e-4, atol=JSD_ATOL)
    torch.testing.assert_close(ours.div_toxic, ref.div_toxic, rtol=1e-4, atol=JSD_ATOL)
    if scale >= 40.0:  # nearly disjoint peaked distributions: every divergence is about log 2
        assert float(ref.div_toxic[:, 2:].min()) > 0.69
    # The choices are near-ties here, so compare what they pick, not the indices.
    assert ours.s is not None
    rows = torch.arange(2)
    picked = ref.div_toxic[rows, ours.s]
    torch.testing.assert_close(picked, ref.div_toxic[:, 1:].amax(-1), rtol=0, atol=2 * JSD_ATOL)


def test_true_jsd_of_disjoint_one_hot_rows_is_log_2() -> None:
    end = torch.full((1, 8), -1e4)
    end[0, 0] = 0.0
    cands = torch.full((1, 2, 8), -1e4)
    cands[0, 0, 0] = 0.0  # the same as end
    cands[0, 1, 5] = 0.0  # disjoint from end
    for path in (select_layers_torch, select_layers_fused):
        div = path(end, cands, None, "jsd").div_end
        assert float(div[0, 0]) == pytest.approx(0.0, abs=1e-6)
        assert float(div[0, 1]) == pytest.approx(math.log(2.0), abs=1e-6)


def test_workspace_follows_the_shape() -> None:
    for batch, k in ((2, 3), (4, 6), (2, 3)):
        end, toxic, cands = logits(batch, k, 501, 5.0, seed=batch * k)
        ours = select_layers_fused(end, cands, toxic)
        ref = select_layers_torch(end, cands, toxic)
        assert ours.div_end.shape == (batch, k)
        torch.testing.assert_close(ours.div_end, ref.div_end, rtol=1e-4, atol=REF_ATOL)


@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("with_toxic", [True, False])
def test_contrast_matches(weight: float, with_toxic: bool) -> None:
    end, toxic, cands = logits(3, 4, 2003, 4.0, seed=3)
    h = torch.tensor([0, 2, 3])
    s = torch.tensor([1, 1, 3])
    t, ss = (toxic, s) if with_toxic else (None, None)
    ours = contrast_scores_fused(end, cands, h, t, ss, alpha=0.05, weight=weight)
    ref = contrast_scores_torch(end, cands, h, t, ss, alpha=0.05, weight=weight)
    head = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(ours), head)
    assert int(head.sum()) > 3
    torch.testing.assert_close(ours[head], ref[head], rtol=1e-5, atol=1e-5)


def test_dispatch_uses_the_fast_path_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    end, toxic, cands = logits(2, 4, 1001, 300.0, seed=1)
    calls: list[str] = []
    import detox_kernels.fused_torch as fused

    original = fused.select_layers_fused

    def spy(*args: object, **kwargs: object) -> detox_kernels.LayerSelection:
        calls.append("fused")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fused, "select_layers_fused", spy)
    monkeypatch.setenv("DETOX_KERNELS", "auto")
    fast = detox_kernels.select_layers(end, cands, toxic)
    monkeypatch.setenv("DETOX_KERNELS", "torch")
    slow = detox_kernels.select_layers(end, cands, toxic)
    assert calls == ["fused"]
    assert torch.equal(fast.h, slow.h)
    torch.testing.assert_close(fast.div_end, slow.div_end, rtol=1e-4, atol=REF_ATOL)


def test_inference_mode_and_autograd_are_both_fine() -> None:
    end, toxic, cands = logits(2, 3, 401, 5.0, seed=11)
    with torch.inference_mode():
        inside = select_layers_fused(end, cands, toxic)
    with torch.no_grad():
        outside = select_layers_fused(end, cands, toxic)  # same shapes, other kind of tensor
    torch.testing.assert_close(inside.div_end, outside.div_end)
    grad_end = end.clone().requires_grad_(True)
    tracked = select_layers_fused(grad_end, cands, toxic)
    assert torch.equal(tracked.h, outside.h)


@pytest.mark.parametrize("divergence", ["reference", "jsd"])
@pytest.mark.parametrize("with_toxic", [True, False])
@pytest.mark.parametrize("vocab", [300, 1024])
def test_row_blocking_gives_the_whole_batch_result(
    divergence: str, with_toxic: bool, vocab: int
) -> None:
    """The batch is processed one row at a time (cache-resident scratch): the same choices and
    divergences as one pass over the whole ``[B, K, V]`` batch; bit for bit where each row starts
    on a SIMD boundary (V a multiple of 16, as real vocabularies are), else to the last ulp
    (vector loops split a misaligned row differently)."""
    from detox_kernels.fused_torch import _select_rows

    end, toxic, cands = logits(5, 6, vocab, 40.0, seed=7)
    tox = toxic if with_toxic else None
    whole = _select_rows(end, cands, tox, divergence)  # type: ignore[arg-type]
    rows = select_layers_fused(end, cands, tox, divergence)  # type: ignore[arg-type]
    assert torch.equal(whole.h, rows.h)
    assert (whole.s is None) == (rows.s is None) == (not with_toxic)
    if whole.s is not None and rows.s is not None:
        assert torch.equal(whole.s, rows.s)
    pairs = [(whole.div_end, rows.div_end)]
    if whole.div_toxic is not None and rows.div_toxic is not None:
        pairs.append((whole.div_toxic, rows.div_toxic))
    for a, b in pairs:
        if vocab % 16 == 0:
            assert torch.equal(a, b)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread (detox's CPU default), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield None
    torch.set_num_threads(before)


def test_numpy_math_is_chosen_only_where_it_applies(one_thread: None) -> None:
    import detox_kernels.fused_torch as fused

    x = torch.rand(2, 3, 64)
    assert fused._numpy_math(x)
    assert not fused._numpy_math(x.double())
    assert not fused._numpy_math(x.transpose(1, 2))  # not contiguous
    assert not fused._numpy_math(x.clone().requires_grad_(True))
    torch.set_num_threads(2)
    assert not fused._numpy_math(x)  # numpy's loops run on one thread only


@pytest.mark.parametrize("divergence", ["reference", "jsd"])
@pytest.mark.parametrize("vocab", [1001, 2048])
def test_numpy_math_gives_the_torch_math_results(
    divergence: str, vocab: int, one_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpy's exp/log (taken with one torch thread) against torch's, on the same inputs."""
    import detox_kernels.fused_torch as fused

    calls: list[str] = []
    for name in ("exp", "log"):
        original = getattr(np, name)

        def spy(*args: object, _f: object = original, _n: str = name, **kw: object) -> object:
            calls.append(_n)
            return _f(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(fused.np, name, spy)
    end, toxic, cands = logits(3, 7, vocab, 300.0, seed=vocab)
    fast = select_layers_fused(end, cands, toxic, divergence)  # type: ignore[arg-type]
    assert "exp" in calls and ("log" in calls or divergence == "jsd")
    monkeypatch.setattr(fused, "_numpy_math", lambda *tensors: False)
    calls.clear()
    plain = select_layers_fused(end, cands, toxic, divergence)  # type: ignore[arg-type]
    assert calls == []
    assert torch.equal(fast.h, plain.h)
    assert fast.s is not None and plain.s is not None
    assert torch.equal(fast.s, plain.s)
    atol = JSD_ATOL if divergence == "jsd" else REF_ATOL
    torch.testing.assert_close(fast.div_end, plain.div_end, rtol=1e-4, atol=atol)
    assert fast.div_toxic is not None and plain.div_toxic is not None
    torch.testing.assert_close(fast.div_toxic, plain.div_toxic, rtol=1e-4, atol=atol)
