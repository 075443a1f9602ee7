"""Toxicity scorers behind one protocol, chosen by a spec string (see ``load_scorer``)."""

from detox_core.scoring.base import ToxicityScorer, score_texts
from detox_core.scoring.jobs import ScoredText, score_in_batches
from detox_core.scoring.registry import DEFAULT_SCORER, SCORER_SPECS, load_scorer

__all__ = [
    "DEFAULT_SCORER",
    "SCORER_SPECS",
    "ScoredText",
    "ToxicityScorer",
    "load_scorer",
    "score_in_batches",
    "score_texts",
]
