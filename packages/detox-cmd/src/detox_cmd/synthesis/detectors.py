"""Where the toxic-span detector comes from: ``--detector`` spec to a ``Detector``.

- ``None`` (default): ``detox_cmd.spans.default_detector()``, the shipped ``spans-minilm``
  detector (trained on first use from the demo data only where its weights are missing);
- a directory: ``detox_cmd.spans.SpanDetector.load(DIR)``;
- ``scorer``: no trained model; the words of the text (``\\w+`` runs and single punctuation
  marks) are the tokens and each adjacent pair's text is scored by the toxicity scorer, which is
  how the reference code labelled its segment training data (METHODS §2.1).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from detox_cmd.synthesis.masking import Detector
from detox_core.errors import DetoxError
from detox_core.scoring import ToxicityScorer

SCORER_DETECTOR = "scorer"
_WORD = re.compile(r"\w+|[^\w\s]")


class WordPairPrediction(BaseModel):
    """Word tokens of a text and the scorer's toxicity of each adjacent pair."""

    offsets: list[tuple[int, int]]
    segment_probs: list[float]


class ScorerDetector:
    """Scores every adjacent word pair with a toxicity scorer (a missing score counts as 0)."""

    def __init__(self, scorer: ToxicityScorer) -> None:
        self.scorer = scorer

    def predict(self, texts: list[str]) -> list[WordPairPrediction]:
        """One prediction per text; the pairs of all texts are scored in one batch."""
        offsets = [[(m.start(), m.end()) for m in _WORD.finditer(text)] for text in texts]
        pairs = [
            text[tokens[i][0] : tokens[i + 1][1]]
            for text, tokens in zip(texts, offsets, strict=True)
            for i in range(len(tokens) - 1)
        ]
        values = self.scorer.score(pairs) if pairs else []
        predictions: list[WordPairPrediction] = []
        cursor = 0
        for tokens in offsets:
            count = max(len(tokens) - 1, 0)
            probs = [float(v) if v is not None else 0.0 for v in values[cursor : cursor + count]]
            cursor += count
            predictions.append(WordPairPrediction(offsets=tokens, segment_probs=probs))
        return predictions


def load_detector(spec: str | None, scorer: ToxicityScorer, device: str = "auto") -> Detector:
    """The detector named by ``spec`` (see the module docstring)."""
    if spec == SCORER_DETECTOR:
        return ScorerDetector(scorer)
    from detox_cmd.spans import SpanDetector, default_detector

    if spec is None:
        return default_detector(device)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise DetoxError(
            f"detector directory not found: {spec}",
            "pass a trained span-detector directory, or --detector scorer",
        )
    return SpanDetector.load(path, device)
