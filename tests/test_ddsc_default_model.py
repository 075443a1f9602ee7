"""``detox ddsc generate`` on the real default model (SmolLM2-135M-Instruct, hidden states 0..30)."""

from __future__ import annotations

from typing import Any

import pytest
from train_helpers import one_thread  # noqa: F401  (one intra-op thread for this module)

from detox_cli.app import main
from detox_core.records import Generation
from detox_ddsc import load_default_profile

PROMPT = "I think that people who"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layers", "toxic", "candidates"),
    [
        ("0,2,28,29,30", None, {0, 2, 28, 29}),  # MODE-2, T from the shipped profile
        ("0,2,28,29,30", "20", {0, 2, 28, 29}),
        ("all", None, set(range(30))),  # MODE-1
        ("all", "20", set(range(30))),
    ],
)
def test_generate_on_the_default_model(
    capsys: pytest.CaptureFixture[str], layers: str, toxic: str | None, candidates: set[int]
) -> None:
    args = [
        "ddsc",
        "generate",
        "--layers",
        layers,
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        "6",
        "--greedy",
        "--show-layers",
    ]
    if toxic is not None:
        args += ["--toxic-layer", toxic]
    main(args)
    record = Generation.model_validate_json(capsys.readouterr().out.splitlines()[0])
    expected_toxic = int(toxic) if toxic is not None else load_default_profile().toxic_layer
    assert record.extras["toxic_layer"] == expected_toxic
    steps: list[Any] = record.extras["layers"]
    assert len(steps) >= 1
    first = min(candidates)
    assert all(h in candidates and s in candidates - {first} for h, s in steps)
    assert record.text.strip()


@pytest.mark.slow
def test_bad_layers_on_the_default_model(capsys: pytest.CaptureFixture[str]) -> None:
    for layers, fragment in (
        ("0,2,99", "layer 99 is out of range: this model has hidden states 0..30"),
        ("2,0", "must be increasing"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["ddsc", "generate", "--layers", layers, "--prompt", PROMPT])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and fragment in err and "\n" not in err
