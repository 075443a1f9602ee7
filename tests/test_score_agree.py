"""``detox score agree`` and the agreement metrics, against values computed by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import typer

from detox_cli.commands import score_agree, score_group
from detox_cli.errors import run_guarded
from detox_core.scoring.agreement import (
    agreement,
    average_ranks,
    reliability_curve,
    roc_auc,
    spearman,
)

# text -> (reference, score): no ties, so Spearman is 1 - 6 sum(d^2) / (n (n^2 - 1)).
PAIRS = {
    "alpha": (0.9, 0.8),
    "bravo": (0.7, 0.3),
    "charlie": (0.2, 0.6),
    "delta": (0.1, 0.05),
    "echo": (0.4, 0.2),
    "foxtrot": (0.6, 0.9),
}


class FakeScorer:
    """Scores from the table above; an unknown text is missing."""

    name = "fake"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[float | None]:
        return [PAIRS[t][1] if t in PAIRS else None for t in texts]


def run_score(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``detox score ARGS`` through the score group and the CLI's error handling."""
    app = typer.Typer()
    app.add_typer(score_group.app, name="score")
    command = typer.main.get_command(app)
    capsys.readouterr()
    try:
        run_guarded(
            lambda: command.main(args=["score", *args], prog_name="detox", standalone_mode=False)
        )
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_rtp(path: Path) -> Path:
    texts = list(PAIRS)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(0, len(texts), 2):
            record = {
                "prompt": {"text": texts[i], "toxicity": PAIRS[texts[i]][0]},
                "continuation": {"text": texts[i + 1], "toxicity": PAIRS[texts[i + 1]][0]},
            }
            handle.write(json.dumps(record) + "\n")
        # A record without a reference score is skipped.
        handle.write(json.dumps({"prompt": {"text": "golf", "toxicity": None}}) + "\n")
    return path


def expected_metrics() -> dict[str, float]:
    refs = [r for r, _ in PAIRS.values()]
    scores = [s for _, s in PAIRS.values()]
    n = len(refs)
    pos = [s for r, s in PAIRS.values() if r > 0.5]
    neg = [s for r, s in PAIRS.values() if r <= 0.5]
    auc = sum(p > q for p in pos for q in neg) / (len(pos) * len(neg))
    rank_r = {v: i for i, v in enumerate(sorted(refs))}
    rank_s = {v: i for i, v in enumerate(sorted(scores))}
    d2 = sum((rank_r[r] - rank_s[s]) ** 2 for r, s in PAIRS.values())
    mr, ms = sum(refs) / n, sum(scores) / n
    cov = sum((r - mr) * (s - ms) for r, s in PAIRS.values())
    var_r = sum((r - mr) ** 2 for r in refs)
    var_s = sum((s - ms) ** 2 for s in scores)
    return {
        "auc": auc,
        "spearman": 1 - 6 * d2 / (n * (n * n - 1)),
        "pearson": cov / math.sqrt(var_r * var_s),
        "mae": sum(abs(r - s) for r, s in PAIRS.values()) / n,
    }


def test_metrics_match_hand_computed_values() -> None:
    refs = [r for r, _ in PAIRS.values()]
    scores: list[float | None] = [s for _, s in PAIRS.values()]
    result = agreement([*scores, None], [*refs, 0.9], scorer="fake@1")
    want = expected_metrics()
    # positives 0.9/0.7/0.6 score 0.8/0.3/0.9; negatives 0.2/0.1/0.4 score 0.6/0.05/0.2
    assert want["auc"] == pytest.approx(8 / 9)  # 3 + 2 + 3 of 9 pairs
    for key, value in want.items():
        assert getattr(result, key) == pytest.approx(value)
    assert (result.n, result.n_missing, result.n_positive) == (6, 1, 3)
    c = result.confusion  # predicted > 0.5: alpha, charlie, foxtrot
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 2, 1)


def test_ties_get_average_ranks_and_half_credit() -> None:
    assert average_ranks([3.0, 1.0, 3.0, 2.0]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert roc_auc([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([True, True], [0.1, 0.2]) != roc_auc([True, True], [0.1, 0.2])  # NaN
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)


def test_reliability_curve_bins() -> None:
    curve = reliability_curve([0.05, 0.15, 0.12, 0.95], [0.0, 0.2, 0.4, 1.0], bins=10)
    assert curve[0] == pytest.approx((0.05, 0.0, 1))
    assert curve[1] == pytest.approx((0.135, 0.3, 2))
    assert curve[2] == pytest.approx((0.95, 1.0, 1))


def test_agree_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(score_agree, "load_scorer", lambda spec, device: FakeScorer())
    path = write_rtp(tmp_path / "rtp.jsonl")
    plot = tmp_path / "agree.png"
    code, out, err = run_score(
        ["agree", str(path), "--scorer", "profanity", "--json", "--plot", str(plot)], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    assert list(result)[:6] == ["auc", "spearman", "pearson", "mae", "n", "scorer"]
    for key, value in expected_metrics().items():
        assert result[key] == pytest.approx(value)
    assert result["n"] == 6 and result["scorer"] == "fake@1"
    assert plot.is_file() and plot.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run_score(
        ["agree", str(path), "--scorer", "profanity", "--reference-field", "prompt.toxicity"],
        capsys,
    )
    assert code == 0 and "fake@1" in out and "auc" in out


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--scorer", "oracle"], "unknown scorer 'oracle'"),
        (["--scorer", "tox-minilm:/no/such/dir"], "weights folder not found"),
        (["--scorer", "classifier:/no/such/dir"], "checkpoint not found"),
        (["--scorer", "profanity", "--reference-field", "prompt.insult"], "no prompt.insult"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], wanted: str
) -> None:
    path = write_rtp(tmp_path / "rtp.jsonl")
    code, out, err = run_score(["agree", str(path), *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and wanted in err


def test_scorer_spec_is_checked_before_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_score(["agree", str(tmp_path / "missing.jsonl"), "-s", "oracle"], capsys)
    assert code == 2 and "unknown scorer" in err


def test_score_file_is_still_the_default_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("you are a stupid fucking idiot\nwhat a lovely day\n", encoding="utf-8")
    code, out, err = run_score(["--scorer", "profanity", str(texts)], capsys)
    assert code == 0, err
    values = [json.loads(line)["toxicity"]["value"] for line in out.splitlines()]
    assert values[0] > 0.5 > values[1]
    code, out, _ = run_score([str(texts), "-s", "profanity"], capsys)
    assert code == 0 and len(out.splitlines()) == 2
