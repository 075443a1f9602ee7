"""``detox cmd spans train | eval | predict`` on a tiny encoder and tiny CSV files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from detox_cli.app import main
from tiny_models import save_tiny_bert, write_tiny_toxic_spans_csv


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spans-cli")
    jigsaw = root / "jigsaw.csv"
    jigsaw.write_text(
        "id,comment_text,toxic\n1,you are a stupid idiot,1\n2,the weather is nice today,0\n"
        "3,we go to the park,0\n4,damn you fool,1\n"
    )
    return {
        "encoder": save_tiny_bert(root / "bert"),
        "train": write_tiny_toxic_spans_csv(root / "train.csv", 30, seed=3),
        "test": write_tiny_toxic_spans_csv(root / "test.csv", 10, seed=4),
        "jigsaw": jigsaw,
        "out": root / "detector",
    }


@pytest.fixture(scope="module")
def detector_dir(files: dict[str, Path]) -> Path:
    argv = ["cmd", "spans", "train", "--out", str(files["out"]), "--spans", str(files["train"])]
    argv += ["--jigsaw", str(files["jigsaw"]), "--encoder", str(files["encoder"])]
    argv += ["--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--device", "cpu"]
    argv += ["--dev-fraction", "0.2", "--max-jigsaw", "3"]
    main(argv)
    return files["out"]


def test_train_writes_a_detector_directory(detector_dir: Path) -> None:
    for name in ("detector.json", "model.safetensors", "config.json", "training.json"):
        assert (detector_dir / name).is_file(), name
    training = json.loads((detector_dir / "training.json").read_text())
    assert training["data"]["n_spans_texts"] == 30
    assert training["data"]["n_jigsaw_texts"] == 3
    assert training["data"]["scorer"].startswith("profanity@")
    assert training["n_dev_texts"] == 6 and training["n_train_texts"] == 27
    assert training["dev"]["n_texts"] == 6 and len(training["dev_history"]) == 2
    assert not (detector_dir / ".train_state").exists()


def test_eval_json_keys(
    detector_dir: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["cmd", "spans", "eval", "--detector", str(detector_dir), "--spans", str(files["test"]),
          "--json", "--device", "cpu"])  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    for key in ("span_f1", "segment_precision", "segment_recall", "sentence_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert result["n_texts"] == 10


def test_predict_marks_spans(detector_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "you are a [stupid] fool"
    main(["cmd", "spans", "predict", "--detector", str(detector_dir), "--text", text,
          "--threshold", "0.0", "--char-rule", "union", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    # threshold 0 marks all 6 pairs: the whole text is one span, printed verbatim
    assert text in out
    assert "sentence toxicity:" in out
    assert len([line for line in out.splitlines() if line.strip()[:2] in {"0.", "1."}]) == 6


@pytest.mark.parametrize(
    "argv",
    [
        ["cmd", "spans", "train", "--out", "OUT"],  # no data
        ["cmd", "spans", "train", "--out", "OUT", "--spans", "missing.csv"],
        ["cmd", "spans", "eval", "--detector", "NOT_A_DETECTOR", "--spans", "TEST"],
        ["cmd", "spans", "predict", "--detector", "NOT_A_DETECTOR", "--text", "hi"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replace = {
        "OUT": str(tmp_path / "o"),
        "TEST": str(files["test"]),
        "NOT_A_DETECTOR": str(tmp_path),
    }
    with pytest.raises(SystemExit) as exit_info:
        main([replace.get(arg, arg) for arg in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
