"""Build a scorer from its spec string.

- ``profanity`` (default): alt-profanity-check, offline.
- ``classifier:PATH[#LABEL]``: a local sequence-classification checkpoint; LABEL is the toxic
  label's name or index.
- ``perspective``: Perspective API (``PERSPECTIVE_API_KEY``), with cache, QPS limit and retries.
"""

from __future__ import annotations

from detox_core.errors import DetoxError
from detox_core.scoring.base import ToxicityScorer

DEFAULT_SCORER = "profanity"


def load_scorer(spec: str = DEFAULT_SCORER) -> ToxicityScorer:
    """Return the scorer named by ``spec``."""
    if spec == "profanity":
        from detox_core.scoring.profanity import ProfanityScorer

        return ProfanityScorer()
    raise DetoxError(
        f"unknown scorer {spec!r}", "use profanity, classifier:PATH[#LABEL] or perspective"
    )
