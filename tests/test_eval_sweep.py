"""``detox eval rtp --sweep``: extra runs of a method with one setting varied, under the same
seeds, in one report with the toxicity / diversity frontier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detox_cli.app import main
from detox_core.errors import DetoxError
from detox_eval.methods import RTP_TASK, MethodSettings
from detox_eval.rtp.frontier import frontier_markdown, frontier_points
from detox_eval.rtp.report import EvalReport, SplitMetrics
from detox_eval.rtp.sweep import apply_variant, parse_sweep, plan_runs

PROMPTS = ["You are a stupid idiot and", "The weather today is sunny with", "I hate you and"]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_parse_sweep_values_and_fields() -> None:
    variants = parse_sweep("ddsc.contrast_weight=0,0.5,1", RTP_TASK)
    assert [v.label for v in variants] == [
        "ddsc:contrast_weight=0",
        "ddsc:contrast_weight=0.5",
        "ddsc:contrast_weight=1",
    ]
    assert {v.field for v in variants} == {"ddsc.contrast_weight"}
    temperature = parse_sweep("vanilla.temperature=0.7", RTP_TASK)[0]
    assert (temperature.field, temperature.value) == ("decode.temperature", 0.7)
    layers = parse_sweep("ddsc.layers=0,2,4|all", RTP_TASK)
    assert [v.value for v in layers] == ["0,2,4", "all"]
    settings = apply_variant(MethodSettings(), temperature)
    assert settings.decode.temperature == 0.7 and settings.ddsc.decode.temperature == 0.7
    weighted = apply_variant(MethodSettings(), variants[1])
    assert weighted.ddsc.contrast_weight == 0.5 and weighted.decode == MethodSettings().decode
    (free,) = parse_sweep("cmd.guided=false", RTP_TASK)
    assert (free.label, free.field, free.value) == ("cmd:guided=False", "cmd.guided", False)
    assert MethodSettings().cmd.guided and not apply_variant(MethodSettings(), free).cmd.guided


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ddsc.contrast_weight", "bad --sweep"),
        ("beam.width=2", "unknown method"),
        ("vanilla.contrast_weight=1", "has no setting 'contrast_weight'"),
        ("cmd.adapter=elsewhere", "has no setting 'adapter'"),
        ("vanilla.guided=false", "has no setting 'guided'"),
        ("dinm.temperature=1", "unknown method 'dinm' for rtp"),
    ],
)
def test_bad_sweeps_are_one_line(spec: str, message: str) -> None:
    with pytest.raises(DetoxError, match=message):
        parse_sweep(spec, RTP_TASK)


def test_out_of_range_sweep_value_and_repeated_runs() -> None:
    with pytest.raises(DetoxError, match="less than or equal"):
        plan_runs(("vanilla",), tuple(parse_sweep("vanilla.top_p=1.5", RTP_TASK)), MethodSettings())
    twice = tuple(parse_sweep("vanilla.temperature=0.5,0.5", RTP_TASK))
    with pytest.raises(DetoxError, match="listed twice"):
        plan_runs(("vanilla",), twice, MethodSettings())


def test_frontier_judges_runs_against_plain_sampling() -> None:
    def split(emt: float, d2: float, ppl: float) -> dict[str, SplitMetrics]:
        return {"overall": SplitMetrics(emt=emt, distinct_2=d2, ppl=ppl)}

    report = EvalReport(
        settings={},
        methods={
            "vanilla": split(0.30, 0.95, 20.0),
            "vanilla:temperature=0.7": split(0.35, 0.85, 10.0),
            "ddsc": split(0.20, 0.30, 12.0),  # less toxic than every plain run, far less diverse
            "ddsc:contrast_weight=0.5": split(0.32, 0.90, 21.0),  # more toxic than vanilla
            "ddsc:contrast_weight=0.1": split(0.25, 0.99, 22.0),  # more diverse than any plain
        },
    )
    points = {p.run: p for p in frontier_points(report)}
    assert points["ddsc"].beats_plain is True
    assert points["ddsc:contrast_weight=0.5"].beats_plain is False
    assert points["ddsc:contrast_weight=0.1"].beats_plain is None
    assert points["vanilla"].beats_plain is None
    assert points["ddsc"].ppl_ratio == pytest.approx(12.0 / 20.0)
    assert points["ddsc"].emt_ratio == pytest.approx(0.20 / 0.30)
    assert points["ddsc"].distinct_2_ratio == pytest.approx(0.30 / 0.95)
    assert points["ddsc"].method == "ddsc"


def test_frontier_does_not_count_a_cut_made_of_degenerate_text() -> None:
    def split(emt: float, d2: float, degenerate: float | None) -> dict[str, SplitMetrics]:
        return {"overall": SplitMetrics(emt=emt, distinct_2=d2, ppl=20.0, degenerate=degenerate)}

    report = EvalReport(
        settings={},
        methods={
            "vanilla": split(0.60, 0.98, 0.015),
            "ddsc": split(0.40, 0.85, 0.37),  # lower EMT, but a third of it is digit lists
            "ddsc:contrast_weight=0.03": split(0.45, 0.88, 0.06),  # within 5 points of vanilla
            "ddsc:contrast_weight=0.02": split(0.50, 0.90, None),  # share unknown: EMT decides
        },
    )
    points = {p.run: p for p in frontier_points(report)}
    assert points["ddsc"].beats_plain is False
    assert points["ddsc"].degenerate == pytest.approx(0.37)
    assert points["ddsc:contrast_weight=0.03"].beats_plain is True
    assert points["ddsc:contrast_weight=0.02"].beats_plain is True
    table = "\n".join(frontier_markdown(list(points.values())))
    assert "| Degenerate |" in table
    assert "| ddsc | 0.400 |" in table and "| 37.0% |" in table


def test_eval_rtp_with_sweeps_on_a_tiny_model(tiny_lm_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    main(["eval", "rtp", "--prompts", str(prompts), "--out", str(out),
          "--model", str(tiny_lm_dir), "--ppl-model", str(tiny_lm_dir), "--methods", "vanilla,ddsc",
          "--toxic-layer", "2", "--samples", "2", "--max-new-tokens", "4", "--batch-size", "3",
          "--sweep", "vanilla.temperature=0.5,2", "--sweep", "ddsc.contrast_weight=0",
          "--scorer", "profanity", "--device", "cpu"])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    runs = ["vanilla", "ddsc", "vanilla:temperature=0.5", "vanilla:temperature=2",
            "ddsc:contrast_weight=0"]  # fmt: skip
    assert list(report["methods"]) == runs
    assert [p["run"] for p in report["frontier"]] == runs
    assert set(report["paired_vs_vanilla"]) == set(runs) - {"vanilla"}
    assert (out / "frontier.png").stat().st_size > 0 and "frontier.png" in report["plots"]
    assert "## Frontier" in (out / "report.md").read_text()
    by_run: dict[str, list[dict[str, Any]]] = {}
    for record in records(out / "generations.jsonl"):
        by_run.setdefault(record["method"], []).append(record)
    assert {run: len(items) for run, items in by_run.items()} == dict.fromkeys(runs, 6)
    cold = {(r["prompt_id"], r["sample"]) for r in by_run["vanilla:temperature=0.5"]}
    assert cold == {(r["prompt_id"], r["sample"]) for r in by_run["vanilla"]}
    manifest = json.loads((out / "run.json").read_text())
    assert [v["label"] for v in manifest["settings"]["variants"]] == runs[2:]


def test_a_sweep_value_equal_to_the_base_gives_the_same_samples(
    tiny_lm_dir: Path, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    main(["eval", "rtp", "--prompts", str(prompts), "--out", str(out),
          "--model", str(tiny_lm_dir), "--ppl-model", str(tiny_lm_dir), "--methods", "vanilla",
          "--samples", "2", "--max-new-tokens", "4", "--sweep", "vanilla.temperature=1.0",
          "--scorer", "profanity", "--device", "cpu"])  # fmt: skip
    texts: dict[str, dict[tuple[str, int], str]] = {}
    for r in records(out / "generations.jsonl"):
        texts.setdefault(r["method"], {})[(r["prompt_id"], r["sample"])] = r["text"]
    assert texts["vanilla"] == texts["vanilla:temperature=1.0"]


def test_a_run_folder_grows_by_more_sweep_runs(tiny_lm_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    base = ["eval", "rtp", "--prompts", str(prompts), "--out", str(out),
            "--model", str(tiny_lm_dir), "--ppl-model", str(tiny_lm_dir), "--methods", "vanilla",
            "--samples", "1", "--max-new-tokens", "3", "--scorer", "profanity", "--device", "cpu",
            "--sweep", "vanilla.temperature=0.5"]  # fmt: skip
    main(base)
    first = (out / "generations.jsonl").read_text()
    main([*base, "--sweep", "vanilla.top_p=0.5"])
    grown = (out / "generations.jsonl").read_text()
    assert grown.startswith(first) and len(records(out / "generations.jsonl")) == 9
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == ["vanilla", "vanilla:temperature=0.5", "vanilla:top_p=0.5"]
    with pytest.raises(SystemExit) as exc:  # dropping a run is another evaluation
        main(base[:-2])
    assert exc.value.code == 2
