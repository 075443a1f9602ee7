"""``detox compare``: plain decoding next to DDSC (and CMD), every text scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_helpers import make_records, one_thread, write_records  # noqa: F401

from detox_cli.app import main
from detox_cli.commands.compare import mode2_layers
from detox_cmd.training import CMDTrainConfig, train


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``detox ARGS`` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny_args(model: Path, *extra: str) -> list[str]:
    return ["compare", "--model", str(model), "--scorer", "profanity", "--toxic-layer", "2",
            "--samples", "2", "--max-new-tokens", "4", "--device", "cpu", *extra]  # fmt: skip


def compare_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run_cli([*args, "--json"], capsys)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_mode2_layers_follow_the_model_depth() -> None:
    assert mode2_layers(30) == "0,2,28,29,30"
    assert mode2_layers(4) == "0,2,3,4"
    assert mode2_layers(1) == "0,1"


def test_json_rows_carry_scores_with_the_scorer(
    tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = compare_json(tiny_args(tiny_lm_dir, "--prompt", "You are a"), capsys)
    assert result["prompt"] == "You are a" and result["ddsc_layers"] == "0,2,3,4"
    assert (result["samples"], result["max_new_tokens"], result["adapter"]) == (2, 4, None)
    rows = result["rows"]
    assert [(r["method"], r["sample"]) for r in rows] == [
        ("vanilla", 0), ("vanilla", 1), ("ddsc", 0), ("ddsc", 1),
    ]  # fmt: skip
    name, version = result["scorer"].split("@")
    assert name == "profanity" and version
    for row in rows:
        assert isinstance(row["text"], str)
        assert row["toxicity"]["scorer"] == name and row["toxicity"]["version"] == version
        assert 0.0 <= row["toxicity"]["value"] <= 1.0
    assert [s["method"] for s in result["summary"]] == ["vanilla", "ddsc"]
    for summary in result["summary"]:
        values = [r["toxicity"]["value"] for r in rows if r["method"] == summary["method"]]
        assert summary["mean_toxicity"] == pytest.approx(sum(values) / len(values))
        assert summary["max_toxicity"] == max(values)
        assert summary["missing"] == 0 and summary["seconds"] >= 0


def test_same_seed_same_output_other_seed_other_samples(
    tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = compare_json(tiny_args(tiny_lm_dir, "--seed", "7"), capsys)
    again = compare_json(tiny_args(tiny_lm_dir, "--seed", "7"), capsys)
    other = compare_json(tiny_args(tiny_lm_dir, "--seed", "8"), capsys)
    assert first["rows"] == again["rows"]
    assert [s["mean_toxicity"] for s in first["summary"]] == [
        s["mean_toxicity"] for s in again["summary"]
    ]
    vanilla = [r["text"] for r in first["rows"] if r["method"] == "vanilla"]
    assert vanilla != [r["text"] for r in other["rows"] if r["method"] == "vanilla"]


def test_table_shows_methods_scores_and_scorer(
    tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tiny_args(tiny_lm_dir, "--prompt", "Hello there"), capsys)
    assert code == 0, err
    assert "Hello there" in out and "profanity@" in out
    assert out.count("vanilla") == 3 and out.count("ddsc") == 3  # 2 samples + the summary
    assert "mean / max over 2 samples" in out


def test_bad_scorer_fails_in_one_line_before_loading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(["compare", "--model", str(tmp_path / "nope.gguf"),
                              "--scorer", "nonsense"], capsys)  # fmt: skip
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown scorer 'nonsense'" in err


def test_adapter_adds_cmd_rows(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = CMDTrainConfig(
        model=str(tiny_lm_dir),
        data_path=write_records(tmp_path / "train.jsonl", make_records()),
        output_dir=tmp_path / "run",
        max_steps=2,
        per_device_train_batch_size=2,
        warmup_ratio=0.0,
        use_cl=False,
    )
    adapter = train(config, show_progress=False).output_dir
    result = compare_json(tiny_args(tiny_lm_dir, "--adapter", str(adapter)), capsys)
    assert [s["method"] for s in result["summary"]] == ["vanilla", "ddsc", "cmd"]
    assert [r["sample"] for r in result["rows"] if r["method"] == "cmd"] == [0, 1]
    assert result["adapter"] == str(adapter)


@pytest.mark.slow
def test_default_model_compare(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", "--samples", "1", "--max-new-tokens", "8", "--device", "cpu"]
    result = compare_json(args, capsys)
    assert result["model"] == "default" and result["ddsc_layers"] == "0,2,28,29,30"
    assert [r["method"] for r in result["rows"]] == ["vanilla", "ddsc"]
    assert all(r["text"].strip() for r in result["rows"])
    assert all(r["toxicity"]["value"] is not None for r in result["rows"])
