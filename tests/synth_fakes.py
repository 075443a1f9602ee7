"""Deterministic stand-ins for the synthesis pipeline's models (detector, scorer, similarity)."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from pydantic import BaseModel

BAD_WORDS = {"stupid", "idiot", "hate", "damn", "fool"}
_WORD = re.compile(r"\S+")


def _bad(word: str) -> bool:
    return word.lower().strip(".,!?'\"") in BAD_WORDS


class FakePrediction(BaseModel):
    """Whitespace tokens and pair probabilities."""

    offsets: list[tuple[int, int]]
    segment_probs: list[float]


class FakeDetector:
    """Whitespace tokens; a pair is toxic (0.9) when either word is a bad word, else 0.1."""

    name = "fake-spans"
    version = "1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str]) -> list[FakePrediction]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
            probs = [
                0.9 if _bad(text[a:b]) or _bad(text[c:d]) else 0.1
                for (a, b), (c, d) in itertools.pairwise(words)
            ]
            out.append(FakePrediction(offsets=words, segment_probs=probs))
        return out


def hash_unit(text: str) -> float:
    """A stable pseudo-random number in [0, 1) from a text."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0x100000000


class FakeScorer:
    """0.99 for a text with a bad word; otherwise ``clean`` or, when that is None, a stable
    pseudo-random score from the text. Texts in ``missing`` get no score (None).
    """

    name = "fake"
    version = "1"

    def __init__(self, missing: Sequence[str] = (), clean: float | None = None) -> None:
        self.missing = set(missing)
        self.clean = clean
        self.seen: list[str] = []

    def score(self, texts: Sequence[str]) -> list[float | None]:
        self.seen.extend(texts)
        values: list[float | None] = []
        for text in texts:
            if text in self.missing:
                values.append(None)
            elif any(_bad(w) for w in text.split()):
                values.append(0.99)
            else:
                values.append(self.clean if self.clean is not None else hash_unit(text))
        return values


def fake_similarity(texts: Sequence[str], originals: Sequence[str]) -> list[float]:
    """0.0 when the original prompt mentions 'unrelated', else 0.9."""
    return [0.0 if "unrelated" in o else 0.9 for o in originals]
