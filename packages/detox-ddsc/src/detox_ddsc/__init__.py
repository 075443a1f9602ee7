"""detox-ddsc: DDSC layer-contrast decoding (METHODS §1) and the toxic-layer locator."""

from detox_ddsc.config import DDSCConfig, Divergence, Mode, Selection
from detox_ddsc.decoder import DDSCOutput, DDSCStepScorer, LayerPlan, generate, plan_layers
from detox_ddsc.layers import parse_layers
from detox_ddsc.pairs import read_pairs
from detox_ddsc.toxic_layer import (
    ToxicLayerProfile,
    load_default_profile,
    load_profile,
    locate_toxic_layer,
)

__all__ = [
    "DDSCConfig",
    "DDSCOutput",
    "DDSCStepScorer",
    "Divergence",
    "LayerPlan",
    "Mode",
    "Selection",
    "ToxicLayerProfile",
    "generate",
    "load_default_profile",
    "load_profile",
    "locate_toxic_layer",
    "parse_layers",
    "plan_layers",
    "read_pairs",
]
