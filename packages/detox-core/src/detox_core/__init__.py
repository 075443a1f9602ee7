"""detox-core: model loading, toxicity scorers, metrics, data records and I/O."""

from detox_core.errors import DetoxError

__all__ = ["DetoxError"]
__version__ = "0.1.0"
