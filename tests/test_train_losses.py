"""The contrastive objective against a direct transcription of METHODS §2.7."""

from __future__ import annotations

import math

import pytest
import torch

from detox_cmd.training.losses import contrastive_loss, info_nce, pool_hidden


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _l_cl(anchor: list[float], pos: list[float], negs: list[list[float]], tau: float) -> float:
    """L_cl = -log(exp(cos(a, pos)/t) / sum_{z in pos+negs} exp(cos(a, z)/t))."""
    numerator = math.exp(_cos(anchor, pos) / tau)
    denominator = sum(math.exp(_cos(anchor, z) / tau) for z in [pos, *negs])
    return -math.log(numerator / denominator)


ANCHORS = [[1.0, 2.0, -1.0], [0.5, -0.3, 2.0], [-1.0, 0.0, 0.7]]
POSITIVES = [[0.9, 1.5, -0.5], [1.0, 1.0, 1.0], [0.2, 0.1, -0.4]]
NEGATIVES = [[-1.0, 0.2, 0.3], [2.0, -1.0, 0.0], [0.1, 0.1, 0.1]]
OWNERS = [0, 0, 1]  # group 2 has no negative


@pytest.mark.parametrize("tau", [1.0, 0.1])
def test_contrastive_loss_matches_the_formula(tau: float) -> None:
    loss = contrastive_loss(
        torch.tensor(ANCHORS), torch.tensor(POSITIVES), torch.tensor(NEGATIVES), OWNERS, tau
    )
    expected = (
        _l_cl(ANCHORS[0], POSITIVES[0], NEGATIVES[:2], tau)
        + _l_cl(ANCHORS[1], POSITIVES[1], NEGATIVES[2:], tau)
    ) / 2  # group 2 has no negative and is skipped
    assert loss is not None
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_info_nce_single_group() -> None:
    loss = info_nce(
        torch.tensor(ANCHORS[0]), torch.tensor(POSITIVES[0]), torch.tensor(NEGATIVES), 1.0
    )
    assert float(loss) == pytest.approx(_l_cl(ANCHORS[0], POSITIVES[0], NEGATIVES, 1.0), rel=1e-5)


def test_no_negatives_anywhere_gives_none() -> None:
    empty = torch.zeros(0, 3)
    assert contrastive_loss(torch.tensor(ANCHORS), torch.tensor(POSITIVES), empty, [], 1.0) is None


def test_loss_is_small_when_anchor_is_the_positive() -> None:
    anchors = torch.tensor(POSITIVES[:1])
    negs = -torch.tensor(POSITIVES[:1])
    near = contrastive_loss(anchors, torch.tensor(POSITIVES[:1]), negs, [0], 0.1)
    far = contrastive_loss(negs, torch.tensor(POSITIVES[:1]), anchors, [0], 0.1)
    assert near is not None and far is not None
    assert float(near) < 0.01 < float(far)


def test_gradient_reaches_every_representation() -> None:
    anchors = torch.tensor(ANCHORS[:1], requires_grad=True)
    pos = torch.tensor(POSITIVES[:1], requires_grad=True)
    negs = torch.tensor(NEGATIVES[:1], requires_grad=True)
    loss = contrastive_loss(anchors, pos, negs, [0], 1.0)
    assert loss is not None
    loss.backward()
    for tensor in (anchors, pos, negs):
        assert tensor.grad is not None and float(tensor.grad.abs().sum()) > 0


def test_masked_pooling_ignores_padding_unmasked_does_not() -> None:
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[2.0, 0.0], [0.0, 2.0], [4.0, 4.0]]]
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    masked = pool_hidden(hidden, mask, "masked")
    unmasked = pool_hidden(hidden, mask, "unmasked")
    assert masked[0].tolist() == pytest.approx([2.0, 3.0])
    assert masked[1].tolist() == pytest.approx([2.0, 2.0])
    assert unmasked[0].tolist() == pytest.approx([104.0 / 3, 106.0 / 3])
    assert unmasked[1].tolist() == pytest.approx(masked[1].tolist())
