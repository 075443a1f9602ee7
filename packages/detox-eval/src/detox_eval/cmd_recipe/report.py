"""The recipe's ``report.md``: what was split, synthesized and trained, and the comparison.

The comparison table is the evaluation's own (``eval/report.json``), reduced to the columns the
CMD paper reports plus the ratios over ``vanilla`` on the same prompts and seeds, and the share
of malformed chains. Plots are linked from the stage folders.
"""

from __future__ import annotations

from detox_cmd.synthesis.manifest import load_manifest
from detox_core.io import atomic_write_text, read_text
from detox_eval.cmd_recipe.config import RecipeLayout
from detox_eval.cmd_recipe.manifest import RecipeManifest
from detox_eval.rtp.report import EvalReport, SplitMetrics
from detox_eval.run_folder import REPORT_JSON


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "-"
    return f"x{value / base:.2f}"


def comparison_rows(report: EvalReport, split: str = "overall") -> list[str]:
    """Markdown rows: EMT, TP (prompt and sample), PPL, distinct-2, malformed, ratios."""
    base: SplitMetrics | None = report.methods.get("vanilla", {}).get(split)
    rows = [
        "| Method | EMT | TP prompt | TP sample | PPL | Dist-2 | Malformed "
        "| EMT ratio | TP ratio | PPL ratio | Dist-2 ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, splits in report.methods.items():
        m = splits.get(split)
        if m is None:
            continue
        b = base or SplitMetrics()
        rows.append(
            f"| {method} | {_fmt(m.emt)} | {_pct(m.tp_prompt)} | {_pct(m.tp_sample)} "
            f"| {_fmt(m.ppl, 2)} | {_fmt(m.distinct_2)} | {_pct(m.malformed)} "
            f"| {_ratio(m.emt, b.emt)} | {_ratio(m.tp_prompt, b.tp_prompt)} "
            f"| {_ratio(m.ppl, b.ppl)} | {_ratio(m.distinct_2, b.distinct_2)} |"
        )
    return rows


def _eval_section(layout: RecipeLayout) -> list[str]:
    path = layout.eval / REPORT_JSON
    if not path.exists():
        return ["", "## Evaluation", "", "Not run yet."]
    report = EvalReport.model_validate_json(read_text(path))
    s = report.settings
    lines = [
        "",
        "## Evaluation (held-out prompts)",
        "",
        f"Scorer **{s.get('scorer')}**, {s.get('samples')} samples per prompt; a sample is toxic "
        f"when its score {s.get('threshold_rule')}. Ratios are over `vanilla` (the base model) on "
        "the same prompts and seeds. Full tables, intervals and the paired comparison: "
        "[eval/report.md](eval/report.md).",
        "",
        *comparison_rows(report),
    ]
    if "toxic" in next(iter(report.methods.values()), {}):
        toxic = comparison_rows(report, "toxic")
        if len(toxic) > 2:
            lines += ["", "Toxic prompts only:", "", *toxic]
    lines += ["", *[f"![{p}](eval/{p})" for p in report.plots]]
    return lines


def render_recipe_report(layout: RecipeLayout, manifest: RecipeManifest) -> str:
    """The markdown of ``report.md``."""
    c = manifest.config
    split = manifest.stages["split"].counts
    lines = [
        "# CMD recipe",
        "",
        f"Model `{c.synthesis.model}`; prompts `{c.prompts}`; seed {c.split.seed}. "
        f"Settings and versions: [recipe.json](recipe.json).",
        "",
        "## Split",
        "",
        f"{split.get('train', '-')} train prompts ({split.get('train_toxic', '-')} toxic), "
        f"{split.get('eval', '-')} eval prompts ({split.get('eval_toxic', '-')} toxic), "
        f"disjoint; {split.get('unscored', 0)} prompts without a toxicity score left out.",
    ]
    synthesis = load_manifest(layout.synthesis) if layout.synthesis.exists() else None
    if synthesis is not None:
        lines += [
            "",
            "## Synthesis",
            "",
            "| Stage | In | Kept | Dropped (reasons) |",
            "|---|---|---|---|",
        ]
        for name, st in synthesis.stages.items():
            reasons = ", ".join(f"{k} {v}" for k, v in st.reasons.items()) or "-"
            lines.append(f"| {name} | {st.entering} | {st.kept} | {st.dropped} ({reasons}) |")
        lines.append(f"\nContinuations scored by {synthesis.scorer}.")
    train = manifest.stages["train"].counts
    if train:
        speed = train.get("tokens_per_second")
        lines += [
            "",
            "## Training",
            "",
            f"{train.get('steps')} optimizer steps, {train.get('tokens')} chain tokens; last step "
            f"LM loss {_fmt(train.get('last_lm'))}, contrastive loss {_fmt(train.get('last_cl'))}"
            + (f"; {speed:.0f} tokens/s" if speed else "")
            + f". Peak lr {c.train.learning_rate:g}, LoRA r {c.train.lora_r}, contrastive weight "
            f"{c.train.cl_weight:g}{'' if c.train.use_cl else ' (off)'}.",
            "",
            "![losses](train/losses.png)",
        ]
    lines += _eval_section(layout)
    return "\n".join(lines) + "\n"


def write_recipe_report(layout: RecipeLayout, manifest: RecipeManifest) -> dict[str, str]:
    """Write ``report.md`` atomically; returns its path as the stage's record."""
    atomic_write_text(layout.report, render_recipe_report(layout, manifest))
    return {"report": str(layout.report)}
