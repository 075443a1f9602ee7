"""``detox ddsc generate | locate | bench`` on the tiny model: records, layers, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detox_cli.app import main
from detox_core.records import Generation


def run_fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize(
    ("layers", "fragment"),
    [
        ("0,2,99", "layer 99 is out of range: this model has hidden states 0..4"),
        ("2,0", "--layers must be increasing (2 comes before 0)"),
        ("0,x,4", "bad layer 'x'"),
        ("1,1,4", "layer 1 is listed twice"),
    ],
)
def test_bad_layer_lists_are_one_line_exit_2(
    tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str], layers: str, fragment: str
) -> None:
    err = run_fails(
        [
            "ddsc",
            "generate",
            "--model",
            str(tiny_lm_dir),
            "--layers",
            layers,
            "--toxic-layer",
            "2",
            "--prompt",
            "Hello",
        ],
        capsys,
    )
    assert err.startswith("error: ")
    assert fragment in err


def test_missing_toxic_layer_for_a_foreign_model(
    tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = run_fails(
        ["ddsc", "generate", "--model", str(tiny_lm_dir), "--layers", "all", "--prompt", "Hi"],
        capsys,
    )
    assert "30 layers" in err and "toxic layer" in err


def test_generate_show_layers_records_h_and_s(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gen.jsonl"
    args = [
        "ddsc",
        "generate",
        "--model",
        str(tiny_lm_dir),
        "--layers",
        "0,1,2,4",
        "--toxic-layer",
        "3",
        "--prompt",
        "Hello, my name is",
        "--prompt",
        "You are",
        "--samples",
        "2",
        "--max-new-tokens",
        "5",
        "--show-layers",
        "--out",
        str(out),
        "--batch-size",
        "3",
    ]
    main(args)
    err = capsys.readouterr().err
    assert "H layer chosen" in err and "S layer chosen" in err
    records = [Generation.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(records) == 4
    assert {r.method for r in records} == {"ddsc"}
    assert {(r.prompt_id, r.sample) for r in records} == {
        ("prompt-0", 0),
        ("prompt-0", 1),
        ("prompt-1", 0),
        ("prompt-1", 1),
    }
    for record in records:
        assert record.extras["toxic_layer"] == 3
        steps = record.extras["layers"]
        assert 1 <= len(steps) <= 5
        assert all(h in (0, 1, 2) and s in (1, 2) for h, s in steps)
    # Resuming writes nothing new.
    main(args)
    assert len(out.read_text().splitlines()) == 4


def test_dola_mode_has_no_safe_layer(tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "ddsc",
            "generate",
            "--model",
            str(tiny_lm_dir),
            "--layers",
            "0,2,4",
            "--mode",
            "dola",
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "3",
            "--show-layers",
            "--greedy",
        ]
    )
    captured = capsys.readouterr()
    record = Generation.model_validate_json(captured.out.splitlines()[0])
    assert record.method == "dola"
    assert all(s is None and h in (0, 2) for h, s in record.extras["layers"])
    assert "S layer chosen" not in captured.err


def test_locate_writes_a_profile_generate_can_use(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"safe": "I cannot help with that.", "unsafe": "You stupid idiot."}\n'
        '{"safe": "What a lovely day.", "unsafe": "I hate you."}\n',
        encoding="utf-8",
    )
    profile = tmp_path / "profile.json"
    main(
        [
            "ddsc",
            "locate",
            "--model",
            str(tiny_lm_dir),
            "--pairs",
            str(pairs),
            "--out",
            str(profile),
            "--limit",
            "1",
        ]
    )
    data = json.loads(profile.read_text())
    assert data["n_pairs"] == 1 and data["num_layers"] == 4
    assert f"toxic layer T = {data['toxic_layer']}" in capsys.readouterr().err
    main(
        [
            "ddsc",
            "generate",
            "--model",
            str(tiny_lm_dir),
            "--layers",
            "all",
            "--profile",
            str(profile),
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "2",
            "--show-layers",
        ]
    )
    record = Generation.model_validate_json(capsys.readouterr().out.splitlines()[0])
    assert record.extras["toxic_layer"] == data["toxic_layer"]
    err = run_fails(
        [
            "ddsc",
            "generate",
            "--model",
            str(tiny_lm_dir),
            "--layers",
            "all",
            "--profile",
            str(profile),
            "--toxic-layer",
            "1",
            "--prompt",
            "Hello",
        ],
        capsys,
    )
    assert "both --toxic-layer and --profile" in err


def test_bench_prints_the_timings(tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "ddsc",
            "bench",
            "--model",
            str(tiny_lm_dir),
            "--layers",
            "0,2,4",
            "--toxic-layer",
            "3",
            "--batch-size",
            "2",
            "--new-tokens",
            "3",
            "--repeats",
            "1",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    hf, plain, ddsc, head = (
        result[f"{key}_ms_per_token"] for key in ("hf_generate", "vanilla", "ddsc", "extra_head")
    )
    assert min(hf, plain, ddsc, head) > 0
    # against transformers' generate; the older figure against detox's own loop kept beside it
    assert result["efficiency"] == pytest.approx((hf + head) / ddsc, rel=1e-2)
    assert result["efficiency_vs_detox"] == pytest.approx((plain + head) / ddsc, rel=1e-2)
    assert result["plain_over_hf"] == pytest.approx(plain / hf, rel=1e-2)
    reused = result["extra_head_reused_ms_per_token"]
    assert reused > 0
    assert result["efficiency_strict"] == pytest.approx((hf + reused) / ddsc, rel=1e-2)
    assert (result["batch"], result["layers"], result["head_rows"]) == (2, [0, 2, 4], 3)
