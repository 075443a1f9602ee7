"""The one place that chooses between the Triton kernels and the torch references.

``DETOX_KERNELS=torch`` forces the reference; ``DETOX_KERNELS=triton`` forces Triton (on the CPU
this needs ``TRITON_INTERPRET=1``). By default Triton runs on CUDA tensors and, elsewhere, the
faster plain-torch path of ``fused_torch`` (same results as the reference up to float rounding).
"""

from __future__ import annotations

import os

import torch

from detox_kernels.reference import (
    Divergence,
    LayerSelection,
    contrast_scores_torch,
    select_layers_torch,
)


def triton_available() -> bool:
    """True when Triton can be imported."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_triton(tensor: torch.Tensor) -> bool:
    """Whether the fused Triton path should handle ``tensor``."""
    choice = os.environ.get("DETOX_KERNELS", "auto")
    if choice == "torch":
        return False
    if choice == "triton":
        return triton_available()
    return tensor.is_cuda and triton_available()


def select_layers(
    end: torch.Tensor,
    cands: torch.Tensor,
    toxic: torch.Tensor | None = None,
    divergence: Divergence = "reference",
) -> LayerSelection:
    """Per-row H and S selection (see ``select_layers_torch`` for the semantics)."""
    if use_triton(end):
        from detox_kernels.select_kernel import select_layers_triton

        result: LayerSelection = select_layers_triton(end, cands, toxic, divergence)
        return result
    if os.environ.get("DETOX_KERNELS") == "torch":
        return select_layers_torch(end, cands, toxic, divergence)
    from detox_kernels.fused_torch import select_layers_fused

    return select_layers_fused(end, cands, toxic, divergence)


def contrast_scores(
    end: torch.Tensor,
    cands: torch.Tensor,
    h: torch.Tensor,
    toxic: torch.Tensor | None = None,
    s: torch.Tensor | None = None,
    alpha: float = 0.1,
    weight: float = 1.0,
    with_h: bool = True,
) -> torch.Tensor:
    """APC head mask and contrast score (see ``contrast_scores_torch`` for the semantics)."""
    if use_triton(end):
        from detox_kernels.contrast_kernel import contrast_scores_triton

        scores: torch.Tensor = contrast_scores_triton(
            end, cands, h, toxic, s, alpha, weight, with_h
        )
        return scores
    if os.environ.get("DETOX_KERNELS") == "torch":
        return contrast_scores_torch(end, cands, h, toxic, s, alpha, weight, with_h)
    from detox_kernels.fused_torch import contrast_scores_fused

    return contrast_scores_fused(end, cands, h, toxic, s, alpha, weight, with_h)
