"""Where detox keeps cached artefacts (converted models, trained detectors, API caches)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_dir(*parts: str) -> Path:
    """The detox cache directory (``$DETOX_CACHE`` or the user cache dir), created on demand."""
    root = os.environ.get("DETOX_CACHE")
    base = Path(root).expanduser() if root else Path(user_cache_dir("detox"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
