"""Build a scorer from its spec string.

- ``profanity`` (default): alt-profanity-check, offline.
- ``classifier:PATH[#LABEL]``: a local sequence-classification checkpoint; LABEL is the toxic
  label's name or index.
- ``perspective[?qps=Q&...]``: Perspective API (``PERSPECTIVE_API_KEY``), with cache, QPS limit
  and retries.
"""

from __future__ import annotations

from detox_core.errors import DetoxError
from detox_core.scoring.base import ToxicityScorer

DEFAULT_SCORER = "profanity"
SCORER_SPECS = "profanity, classifier:PATH[#LABEL] or perspective[?qps=N]"


def load_scorer(spec: str = DEFAULT_SCORER, device: str = "auto") -> ToxicityScorer:
    """Return the scorer named by ``spec`` (``device`` applies to classifier scorers)."""
    if spec == "profanity":
        from detox_core.scoring.profanity import ProfanityScorer

        return ProfanityScorer()
    if spec.startswith("classifier:"):
        from detox_core.scoring.classifier import ClassifierScorer, parse_classifier_spec

        path, label = parse_classifier_spec(spec)
        return ClassifierScorer(path, label, device=device)
    if spec == "perspective" or spec.startswith("perspective?"):
        from detox_core.scoring.perspective import PerspectiveScorer, settings_from_spec

        return PerspectiveScorer(settings_from_spec(spec))
    raise DetoxError(f"unknown scorer {spec!r}", f"use {SCORER_SPECS}")
