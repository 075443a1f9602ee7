"""detox-ddsc: DDSC layer-contrast decoding (METHODS §1) and the toxic-layer locator.

The names below are imported on first use, so ``detox_ddsc.types`` (the option types the CLI
needs) is importable without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detox_ddsc.config import DDSCConfig, Divergence, Mode, Selection
    from detox_ddsc.decoder import DDSCOutput, DDSCStepScorer, LayerPlan, generate, plan_layers
    from detox_ddsc.hf_generate import custom_generate, custom_generate_folder
    from detox_ddsc.layers import parse_layers
    from detox_ddsc.pairs import read_pairs
    from detox_ddsc.toxic_layer import (
        ToxicLayerProfile,
        load_default_profile,
        load_profile,
        locate_toxic_layer,
    )

_MODULES = {
    "DDSCConfig": "config",
    "Divergence": "config",
    "Mode": "config",
    "Selection": "config",
    "DDSCOutput": "decoder",
    "DDSCStepScorer": "decoder",
    "LayerPlan": "decoder",
    "generate": "decoder",
    "plan_layers": "decoder",
    "custom_generate": "hf_generate",
    "custom_generate_folder": "hf_generate",
    "parse_layers": "layers",
    "read_pairs": "pairs",
    "ToxicLayerProfile": "toxic_layer",
    "load_default_profile": "toxic_layer",
    "load_profile": "toxic_layer",
    "locate_toxic_layer": "toxic_layer",
}

__all__ = [
    "DDSCConfig",
    "DDSCOutput",
    "DDSCStepScorer",
    "Divergence",
    "LayerPlan",
    "Mode",
    "Selection",
    "ToxicLayerProfile",
    "custom_generate",
    "custom_generate_folder",
    "generate",
    "load_default_profile",
    "load_profile",
    "locate_toxic_layer",
    "parse_layers",
    "plan_layers",
    "read_pairs",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'detox_ddsc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"detox_ddsc.{module}"), name)
    globals()[name] = value
    return value
