"""The shipped span detector (weights/spans-minilm on all-MiniLM-L6-v2): it loads without training
and marks the obvious span of a few hand-written sentences; ``eval`` reports its stored threshold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detox_cli.app import main

FIXTURES = Path(__file__).parent / "fixtures"

CLEAN = "The weather is lovely today and the park is full of families."
# (text, a word that must be marked, words that must not be marked)
CASES = [
    ("You are a complete idiot and everyone knows it.", "idiot", ["everyone", "knows"]),
    ("What a stupid idea, honestly, who thought of this?", "stupid", ["idea", "honestly"]),
    ("Shut up, you pathetic moron, nobody asked you.", "moron", ["Shut", "nobody", "asked"]),
    ("These corrupt clowns in Congress should all be fired.", "clowns", ["Congress", "fired"]),
]


@pytest.mark.slow
def test_shipped_detector_marks_the_obvious_spans() -> None:
    from detox_cmd.spans import default_detector
    from detox_cmd.spans.weights import SHIPPED_NAME

    detector = default_detector("cpu")  # no training: the shipped weights load as they are
    assert detector.name == SHIPPED_NAME and len(detector.version.split("-")[0]) == 12
    assert detector.config.lora and 0.0 < detector.decision.threshold < 1.0
    texts = [text for text, _, _ in CASES]
    *predictions, clean_prediction = detector.predict([*texts, CLEAN])
    for (text, toxic, clean), prediction in zip(CASES, predictions, strict=True):
        marked = " ".join(text[s:e] for s, e in detector.toxic_char_ranges(prediction))
        assert toxic in marked, (text, marked)
        assert not any(word in marked for word in clean), (text, marked)
        assert len(marked) < len(text) / 2, (text, marked)  # not the whole sentence
        assert prediction.sentence_prob > 0.5
    # trained with clean comments too: a plainly clean text gets no span
    assert detector.toxic_char_ranges(clean_prediction) == []
    assert clean_prediction.sentence_prob < 0.5


@pytest.mark.slow
def test_eval_reports_the_stored_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    from detox_cmd.spans import default_detector

    stored = default_detector("cpu").decision.threshold
    main(["cmd", "spans", "eval", "--spans", str(FIXTURES / "toxic_spans_trial.csv"), "--json",
          "--device", "cpu"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["detector"] == "spans-minilm"
    assert report["stored_threshold"] == stored == report["decision"]["threshold"]
    assert report["n_texts"] == 25 and report["span_f1"] > 0.5
