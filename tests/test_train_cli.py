"""`detox cmd train | generate | export` end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import make_records, one_thread, write_records  # noqa: F401

from detox_cli.app import main


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_train_generate_export(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_records(tmp_path / "train.jsonl", make_records())
    run = tmp_path / "run"
    args = ["cmd", "train", "--data", str(data), "--out", str(run), "--model", str(tiny_lm_dir)]
    args += ["--max-steps", "2", "--batch-size", "2", "--lr", "1e-2", "--save-every", "1"]
    assert _run(args) == 0
    losses = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in losses] == [1, 2]
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert (run / "checkpoints" / "step-000002" / "optimizer.pt").exists()

    assert _run(args) == 2  # the folder already holds a run
    assert "already holds a training run" in capsys.readouterr().err
    assert _run([*args, "--resume"]) == 0  # finished: resuming is a no-op

    gens = tmp_path / "gens.jsonl"
    gen_args = ["cmd", "generate", "--adapter", str(run), "--prompt", "You are a stupid"]
    gen_args += ["--prompt", "Hello", "--samples", "2", "--max-new-tokens", "5", "--show-chain"]
    gen_args += ["--max-chain-tokens", "30", "--out", str(gens), "--device", "cpu"]
    assert _run(gen_args) == 0
    records = [json.loads(line) for line in gens.read_text().splitlines()]
    assert len(records) == 4
    assert {r["method"] for r in records} == {"cmd"}
    assert all(isinstance(r["extras"]["malformed"], bool) for r in records)
    assert all("chain" in r["extras"] for r in records)
    assert _run(gen_args) == 0  # resumes: nothing left to do
    assert len(gens.read_text().splitlines()) == 4

    ddsc_args = ["cmd", "generate", "--adapter", str(run), "--prompt", "Hello", "--device", "cpu"]
    ddsc_args += ["--max-new-tokens", "3", "--max-chain-tokens", "20", "--ddsc-layers", "0,2,4"]
    capsys.readouterr()
    assert _run([*ddsc_args, "--ddsc-toxic-layer", "3"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["method"] for r in printed] == ["cmd+ddsc"]
    assert _run([*ddsc_args, "--ddsc-toxic-layer", "9"]) == 2

    merged = tmp_path / "merged"
    assert _run(["cmd", "export", "--adapter", str(run), "--out", str(merged)]) == 0
    capsys.readouterr()
    plain = ["generate", "--model", str(merged), "--prompt", "Hello", "--max-new-tokens", "3"]
    assert _run([*plain, "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["prompt"] == "Hello"


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["cmd", "generate", "--adapter", str(tmp_path), "--prompt", "x"]) == 2
    assert "no CMD adapter found" in capsys.readouterr().err
    missing = tmp_path / "missing.jsonl"
    assert _run(["cmd", "train", "--data", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: file not found") and len(err.strip().splitlines()) == 1
