"""Build a scorer from its spec string.

- ``tox-minilm`` (default): all-MiniLM-L6-v2 + LoRA + head distilled from Perspective scores,
  offline, weights shipped in the package; ``tox-minilm:DIR`` loads a folder written by
  ``detox score train``.
- ``safety-minilm`` (the SafeEdit judge): the same architecture trained to tell a harmful
  compliance from a refusal or a harmless answer; ``safety-minilm:DIR`` loads a folder written by
  ``detox score train-safety``.
- ``profanity``: alt-profanity-check, offline (a bag-of-words profanity model).
- ``classifier:PATH[#LABEL]``: a local sequence-classification checkpoint; LABEL is the toxic
  label's name or index.
- ``perspective[?qps=Q&...]``: Perspective API (``PERSPECTIVE_API_KEY``), with cache, QPS limit
  and retries.
"""

from __future__ import annotations

from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.scoring.base import ToxicityScorer

DEFAULT_SCORER = "tox-minilm"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"  # tox-minilm's encoder (defined here: no torch import)
SAFETY_JUDGE = "safety-minilm"
SCORER_SPECS = "tox-minilm[:DIR], safety-minilm[:DIR], profanity, classifier:PATH[#LABEL] or perspective[?qps=N]"


def check_scorer_spec(spec: str) -> None:
    """Raise a one-line DetoxError for a spec no scorer answers to (cheap: loads nothing)."""
    known = spec in {"tox-minilm", "safety-minilm", "profanity", "perspective"} or spec.startswith(
        ("tox-minilm:", "safety-minilm:", "classifier:", "perspective?")
    )
    if not known:
        raise DetoxError(f"unknown scorer {spec!r}", f"use {SCORER_SPECS}")
    if spec.startswith("tox-minilm:") and not Path(spec.split(":", 1)[1]).expanduser().is_dir():
        raise DetoxError(
            f"tox-minilm weights folder not found: {spec.split(':', 1)[1]}",
            "train one with `detox score train --out DIR` or use tox-minilm",
        )
    if spec.startswith("safety-minilm:") and not Path(spec.split(":", 1)[1]).expanduser().is_dir():
        raise DetoxError(
            f"safety-minilm weights folder not found: {spec.split(':', 1)[1]}",
            "train one with `detox score train-safety --out DIR` or use safety-minilm",
        )
    if spec.startswith("classifier:"):
        from detox_core.scoring.classifier import parse_classifier_spec

        path, _ = parse_classifier_spec(spec)
        if not (path / "config.json").is_file():
            raise DetoxError(
                f"classifier checkpoint not found: {path}",
                "point classifier:PATH at a local directory with config.json and weights",
            )


def load_scorer(spec: str = DEFAULT_SCORER, device: str = "auto") -> ToxicityScorer:
    """Return the scorer named by ``spec`` (``device`` applies to the neural scorers)."""
    check_scorer_spec(spec)
    if spec == "tox-minilm" or spec.startswith("tox-minilm:"):
        from detox_core.scoring.minilm import ToxMiniLMScorer

        folder = spec.split(":", 1)[1] if ":" in spec else None
        return ToxMiniLMScorer(folder, device=device)
    if spec == "safety-minilm" or spec.startswith("safety-minilm:"):
        from detox_core.scoring.minilm import SafetyMiniLMScorer

        folder = spec.split(":", 1)[1] if ":" in spec else None
        return SafetyMiniLMScorer(folder, device=device)
    if spec == "profanity":
        from detox_core.scoring.profanity import ProfanityScorer

        return ProfanityScorer()
    if spec.startswith("classifier:"):
        from detox_core.scoring.classifier import ClassifierScorer, parse_classifier_spec

        path, label = parse_classifier_spec(spec)
        return ClassifierScorer(path, label, device=device)
    from detox_core.scoring.perspective import PerspectiveScorer, settings_from_spec

    return PerspectiveScorer(settings_from_spec(spec))
