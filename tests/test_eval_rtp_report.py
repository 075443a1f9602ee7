"""RTP report aggregation against hand-computed values: splits, intervals, paired deltas, PPL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from detox_core.records import Generation, Score
from detox_eval.rtp.outputs import chosen_layers
from detox_eval.rtp.plots import plot_ddsc_layers, plot_emt_tp, plot_max_toxicity
from detox_eval.rtp.report import (
    bootstrap_ci,
    build_report,
    paired_comparison,
    prompt_maxima,
    prompt_split,
    render_markdown,
    split_generations,
    split_metrics,
)
from detox_eval.rtp.settings import TASK, RtpManifest, RtpSettings
from detox_eval.rtp.store import pooled_perplexity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gen(
    prompt_id: str,
    sample: int,
    value: float | None,
    *,
    method: str = "vanilla",
    prompt_toxicity: float | None = None,
    text: str = "a b c",
    ppl: tuple[float | None, int] | None = None,
) -> Generation:
    extras = {} if ppl is None else {"ppl": {"model": "m", "value": ppl[0], "tokens": ppl[1]}}
    return Generation(
        prompt_id=prompt_id,
        prompt=f"prompt {prompt_id}",
        sample=sample,
        text=text,
        method=method,
        prompt_toxicity=prompt_toxicity,
        toxicity=Score(value=value, scorer="fake", version="1"),
        extras=extras,
    )


def test_prompt_split_threshold_is_strictly_greater() -> None:
    assert prompt_split(0.51) == "toxic"
    assert prompt_split(0.5) == "nontoxic"
    assert prompt_split(0.0) == "nontoxic"
    assert prompt_split(None) is None


def test_prompts_without_toxicity_go_only_into_overall() -> None:
    gens = [
        gen("a", 0, 0.1, prompt_toxicity=0.9),
        gen("b", 0, 0.2, prompt_toxicity=0.5),
        gen("c", 0, 0.3, prompt_toxicity=None),
    ]
    splits = split_generations(gens)
    assert [g.prompt_id for g in splits["overall"]] == ["a", "b", "c"]
    assert [g.prompt_id for g in splits["toxic"]] == ["a"]
    assert [g.prompt_id for g in splits["nontoxic"]] == ["b"]


def test_prompt_maxima_skip_missing_scores() -> None:
    gens = [gen("a", 0, 0.2), gen("a", 1, 0.7), gen("b", 0, None), gen("b", 1, 0.1)]
    gens.append(gen("c", 0, None))
    assert prompt_maxima(gens) == {"a": 0.7, "b": 0.1}


def test_bootstrap_of_a_constant_is_that_constant() -> None:
    assert bootstrap_ci([0.25] * 7) == pytest.approx((0.25, 0.25))
    assert bootstrap_ci([0.4]) == pytest.approx((0.4, 0.4))
    assert bootstrap_ci([]) is None


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible() -> None:
    values = [0.0, 0.1, 0.2, 0.9, 1.0, 0.5, 0.3, 0.05]
    low, high = bootstrap_ci(values) or (math.nan, math.nan)
    mean = sum(values) / len(values)
    assert min(values) <= low < mean < high <= max(values)
    assert bootstrap_ci(values) == (low, high)
    # Half of all values, each equally likely: a two-point set's mean interval spans 0..1 widely.
    wide = bootstrap_ci([0.0, 1.0] * 2)
    assert wide is not None and wide[0] <= 0.25 and wide[1] >= 0.75


def test_paired_delta_on_hand_made_maxima() -> None:
    base = {"a": 0.5, "b": 0.2, "c": 0.9}
    method = {"a": 0.1, "b": 0.2, "c": 0.6, "d": 0.99}  # "d" has no baseline: left out
    result = paired_comparison(base, method)
    assert result.n_prompts == 3
    assert result.delta_emt == pytest.approx((-0.4 + 0.0 - 0.3) / 3)
    assert result.delta_emt is not None
    assert result.ci_low is not None and result.ci_high is not None
    assert -0.4 - 1e-12 <= result.ci_low <= result.delta_emt <= result.ci_high <= 1e-12


def test_paired_delta_with_a_constant_difference_has_a_point_interval() -> None:
    base = {str(i): 0.1 * i for i in range(6)}
    method = {k: v - 0.05 for k, v in base.items()}
    result = paired_comparison(base, method)
    assert result.delta_emt == pytest.approx(-0.05)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.05, -0.05))
    empty = paired_comparison(base, {"x": 0.3})
    assert empty.n_prompts == 0 and empty.delta_emt is None


def test_split_metrics_by_hand() -> None:
    gens = [
        gen("a", 0, 0.2, text="the cat sat"),
        gen("a", 1, 0.8, text="the cat ran"),
        gen("b", 0, 0.1, text="one two"),
        gen("b", 1, None, text="one two"),
        gen("c", 0, None, text="x"),
    ]
    m = split_metrics(gens)
    assert m.emt == pytest.approx((0.8 + 0.1) / 2)
    assert m.emt_std == pytest.approx(0.35)
    assert m.tp_prompt == pytest.approx(0.5)
    assert m.tp_sample == pytest.approx(1 / 3)
    assert (m.n_prompts, m.n_samples, m.n_missing) == (2, 3, 2)
    # distinct-1 per prompt: a: {the, cat, sat, ran} / 6, b: {one, two} / 4, c: 1/1
    assert m.distinct_1 == pytest.approx((4 / 6 + 2 / 4 + 1.0) / 3)
    assert m.emt is not None and m.emt_ci_low is not None and m.emt_ci_high is not None
    assert 0.1 <= m.emt_ci_low <= m.emt <= m.emt_ci_high <= 0.8
    assert m.ppl is None  # no perplexity function given


def test_pooled_perplexity_is_token_weighted() -> None:
    gens = [
        gen("a", 0, 0.1, ppl=(math.e, 2)),
        gen("a", 1, 0.1, ppl=(math.e**4, 1)),
        gen("b", 0, 0.1, ppl=(None, 0)),  # empty continuation
        gen("b", 1, 0.1),  # not measured
    ]
    assert pooled_perplexity(gens) == pytest.approx(math.exp((2 * 1 + 1 * 4) / 3))
    assert pooled_perplexity(gens[2:]) is None


def _two_method_generations() -> list[Generation]:
    gens: list[Generation] = []
    table = {  # prompt -> (prompt toxicity, vanilla scores, ddsc scores)
        "p1": (0.9, [0.9, 0.2], [0.3, 0.1]),
        "p2": (0.8, [0.6, 0.7], [0.6, 0.2]),
        "p3": (0.1, [0.1, 0.0], [0.2, 0.0]),
        "p4": (None, [0.4, 0.3], [0.1, 0.1]),
    }
    for pid, (ptox, van, dd) in table.items():
        for method, scores in (("vanilla", van), ("ddsc", dd)):
            for k, value in enumerate(scores):
                gens.append(gen(pid, k, value, method=method, prompt_toxicity=ptox, ppl=(10.0, 3)))
    return gens


def test_build_report_overall_splits_and_paired() -> None:
    gens = _two_method_generations()
    manifest = RtpManifest(
        task=TASK,
        settings=RtpSettings(prompts="p.jsonl", methods=("vanilla", "ddsc"), samples=2),
        scorer="fake@1",
        prompt_toxicity_source="file",
        wall_time_s={"vanilla": 1.0, "ddsc": 2.0},
    )
    report = build_report(gens, manifest, ppl_of=pooled_perplexity)
    assert list(report.methods) == ["vanilla", "ddsc"]
    van, dd = report.methods["vanilla"], report.methods["ddsc"]
    assert van["overall"].emt == pytest.approx((0.9 + 0.7 + 0.1 + 0.4) / 4)
    assert van["toxic"].emt == pytest.approx((0.9 + 0.7) / 2)
    assert van["nontoxic"].emt == pytest.approx(0.1)
    assert van["toxic"].tp_prompt == pytest.approx(1.0)
    assert dd["overall"].emt == pytest.approx((0.3 + 0.6 + 0.2 + 0.1) / 4)
    assert dd["toxic"].tp_prompt == pytest.approx(0.5)
    assert dd["overall"].ppl == pytest.approx(10.0)
    assert dd["nontoxic"].n_prompts == 1
    paired = report.paired_vs_vanilla["ddsc"]
    assert paired.delta_emt == pytest.approx(
        ((0.3 - 0.9) + (0.6 - 0.7) + (0.2 - 0.1) + (0.1 - 0.4)) / 4
    )
    assert paired.n_prompts == 4
    assert "vanilla" not in report.paired_vs_vanilla
    assert report.settings["scorer"] == "fake@1"
    assert report.settings["threshold_rule"] == "> 0.5"
    assert report.settings["wall_time_s"] == {"vanilla": 1.0, "ddsc": 2.0}
    md = render_markdown(report)
    assert "fake@1" in md and "| ddsc |" in md and "Paired comparison" in md
    assert f"{paired.delta_emt:.3f}" in md


def test_empty_split_has_no_numbers() -> None:
    gens = [gen("a", 0, 0.3, prompt_toxicity=0.1)]
    manifest = RtpManifest(task=TASK, settings=RtpSettings(prompts="p", methods=("vanilla",)))
    report = build_report(gens, manifest)
    toxic = report.methods["vanilla"]["toxic"]
    assert toxic.emt is None and toxic.n_prompts == 0 and toxic.emt_ci_low is None
    assert "| vanilla | - (-) |" in render_markdown(report)


def test_plots_are_pngs(tmp_path: Path) -> None:
    gens = _two_method_generations()
    manifest = RtpManifest(
        task=TASK, settings=RtpSettings(prompts="p", methods=("vanilla", "ddsc"))
    )
    report = build_report(gens, manifest)
    paths = [
        plot_max_toxicity({"vanilla": [0.1, 0.9], "ddsc": [0.2]}, "fake@1", tmp_path / "a.png"),
        plot_emt_tp(report, "fake@1", tmp_path / "b.png"),
        plot_ddsc_layers({"ddsc": ([0, 0, 2], [1, 3])}, "fake@1", tmp_path / "c.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]


def test_chosen_layers_read_from_extras() -> None:
    g = gen("a", 0, 0.1)
    g.extras["layers"] = [[0, 2], [1, None], [3, 2]]
    assert chosen_layers([g, gen("b", 0, 0.1)]) == ([0, 1, 3], [2, 2])


def test_malformed_chain_share_is_reported_for_chain_methods_only() -> None:
    chains = [gen("p1", i, 0.1, method="cmd") for i in range(4)]
    for i, g in enumerate(chains):
        g.extras["malformed"] = i == 0
    plain = split_metrics([gen("p1", 0, 0.1), gen("p1", 1, 0.2)])
    assert plain.malformed is None
    assert split_metrics(chains).malformed == pytest.approx(0.25)
    settings = RtpSettings(prompts="p.jsonl", methods=("vanilla", "cmd"), samples=4)
    manifest = RtpManifest(task=TASK, settings=settings)
    report = build_report([gen("p1", 0, 0.1), *chains], manifest)
    text = render_markdown(report)
    assert "| Malformed |" in text
    assert report.methods["cmd"]["overall"].malformed == pytest.approx(0.25)
    assert "25.0%" in text.split("| cmd |")[1].splitlines()[0]


def test_degenerate_share_is_a_report_column() -> None:
    fine = "the weather is lovely today and the park is full"
    broken = " (3, 2, 1, 2, 1, 1, 3"
    vanilla = [gen("p1", i, 0.3, text=fine) for i in range(4)]
    ddsc = [gen("p1", i, 0.1, method="ddsc", text=broken if i < 3 else fine) for i in range(4)]
    assert split_metrics(vanilla).degenerate == 0.0
    assert split_metrics(ddsc).degenerate == pytest.approx(0.75)
    settings = RtpSettings(prompts="p.jsonl", methods=("vanilla", "ddsc"), samples=4)
    report = build_report([*vanilla, *ddsc], RtpManifest(task=TASK, settings=settings))
    text = render_markdown(report)
    header = next(line for line in text.splitlines() if line.startswith("| Method | EMT"))
    column = header.split(" | ").index("Degenerate")
    row = next(line for line in text.splitlines() if line.startswith("| ddsc |"))
    assert row.split(" | ")[column] == "75.0%"
    assert len(row.split(" | ")) == len(header.split(" | "))
