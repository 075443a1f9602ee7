"""Every invalid option value: one line on stderr naming the option, exit code 2, no traceback,
before any model or data is loaded (the values are checked by typer or by the typed configs)."""

from __future__ import annotations

import pytest

from detox_cli.app import main

CASES = [
    (["generate", "--prompt", "hi", "--samples", "0"], "--samples"),
    (["generate", "--prompt", "hi", "--top-p", "1.5"], "--top-p"),
    (["generate", "--prompt", "hi", "--temperature", "0"], "--temperature"),
    (["generate", "--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["generate", "--prompt", "hi", "--batch-size", "0"], "--batch-size"),
    (["generate", "--prompt", "hi", "--repetition-penalty", "0"], "--repetition-penalty"),
    (["generate", "--prompt", "hi", "--bogus"], "--bogus"),
    (["ddsc", "generate", "--layers", "0,2,30", "--prompt", "hi", "--alpha", "2"], "--alpha"),
    (["ddsc", "generate", "--layers", "0,2,30", "--prompt", "hi", "--contrast-weight", "-1"],
     "--contrast-weight"),
    (["ddsc", "generate", "--layers", "0,2,30", "--prompt", "hi", "--contrast-temperature", "0"],
     "--contrast-temperature"),
    (["ddsc", "generate", "--layers", "0,2,30", "--prompt", "hi", "--toxic-layer", "-1"],
     "--toxic-layer"),
    (["ddsc", "generate", "--layers", "0,2,30", "--prompt", "hi", "--divergence", "kl"],
     "--divergence"),
    (["eval", "rtp", "--prompts", "p.jsonl", "--out", "o", "--samples", "0"], "--samples"),
    (["eval", "rtp", "--prompts", "p.jsonl", "--out", "o", "--top-p", "0"], "--top-p"),
    (["eval", "safeedit", "--data", "d.json", "--out", "o", "--dinm-steps", "0"], "--dinm-steps"),
    (["eval", "safeedit", "--data", "d.json", "--out", "o", "--mode", "sometimes"], "--mode"),
    (["cmd", "train", "--data", "x", "--out", "o", "--lr", "-1"], "--lr"),
    (["cmd", "train", "--data", "x", "--out", "o", "--cl-temperature", "0"], "--cl-temperature"),
    (["cmd", "generate", "--adapter", "a", "--prompt", "hi", "--top-p", "2"], "--top-p"),
    (["cmd", "generate", "--adapter", "a", "--prompt", "hi", "--generation-temperature", "0"],
     "--generation-temperature"),
    (["cmd", "synthesize", "--prompts", "p", "--out", "o", "--samples", "0"], "--samples"),
    (["compare", "--samples", "0"], "--samples"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "option"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_option_value_names_the_option(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and option in err[0]
    assert "Traceback" not in err[0]
