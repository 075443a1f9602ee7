"""The default offline scorer: alt-profanity-check's linear model (probability of offensive)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence


class ProfanityScorer:
    """``profanity``: alt-profanity-check, a trained linear SVM with calibrated probabilities."""

    name = "profanity"

    def __init__(self) -> None:
        self.version = importlib.metadata.version("alt-profanity-check")
        from profanity_check import predict_prob

        self._predict = predict_prob

    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Probability that each text is offensive."""
        if not texts:
            return []
        return [float(p) for p in self._predict(list(texts))]
