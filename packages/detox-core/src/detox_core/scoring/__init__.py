"""Toxicity scorers behind one protocol, chosen by a spec string (see ``load_scorer``)."""

from detox_core.scoring.base import ToxicityScorer, score_texts
from detox_core.scoring.registry import DEFAULT_SCORER, load_scorer

__all__ = ["DEFAULT_SCORER", "ToxicityScorer", "load_scorer", "score_texts"]
