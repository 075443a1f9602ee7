"""Fused kernels for DDSC decoding, each beside its plain-torch reference.

Public entry points (``select_layers``, ``contrast_scores``) choose the Triton kernel or the torch
reference in one place (``detox_kernels.dispatch``).
"""

from detox_kernels.dispatch import contrast_scores, select_layers, use_triton
from detox_kernels.reference import (
    LayerSelection,
    contrast_scores_torch,
    layer_divergence_torch,
    select_layers_torch,
)

__all__ = [
    "LayerSelection",
    "contrast_scores",
    "contrast_scores_torch",
    "layer_divergence_torch",
    "select_layers",
    "select_layers_torch",
    "use_triton",
]
