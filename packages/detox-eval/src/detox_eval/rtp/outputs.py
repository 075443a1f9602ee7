"""Write a run's report: ``report.json``, ``report.md`` and the PNG plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detox_core.records import Generation
from detox_eval.methods import LAYERS_KEY
from detox_eval.rtp.frontier import frontier_markdown, frontier_points
from detox_eval.rtp.plots import (
    DDSC_LAYERS_PNG,
    EMT_TP_PNG,
    FRONTIER_PNG,
    MAX_TOXICITY_PNG,
    plot_ddsc_layers,
    plot_emt_tp,
    plot_frontier,
    plot_max_toxicity,
)
from detox_eval.rtp.report import (
    EvalReport,
    build_report,
    group_by_method,
    prompt_maxima,
    render_markdown,
)
from detox_eval.rtp.settings import RtpManifest
from detox_eval.rtp.store import pooled_perplexity
from detox_eval.run_folder import write_report_files


def chosen_layers(generations: Sequence[Generation]) -> tuple[list[int], list[int]]:
    """Every H and S layer the decoder chose, over all steps of the given generations."""
    h_layers: list[int] = []
    s_layers: list[int] = []
    for gen in generations:
        steps = gen.extras.get(LAYERS_KEY)
        if not isinstance(steps, list):
            continue
        for step in steps:
            if isinstance(step, list | tuple) and len(step) == 2:
                if step[0] is not None:
                    h_layers.append(int(step[0]))
                if step[1] is not None:
                    s_layers.append(int(step[1]))
    return h_layers, s_layers


def write_report(
    directory: Path, generations: Sequence[Generation], manifest: RtpManifest
) -> EvalReport:
    """Build the report from scored generations and write its JSON, Markdown and plots."""
    report = build_report(generations, manifest, ppl_of=pooled_perplexity)
    scorer = str(report.settings.get("scorer") or "unknown scorer")
    by_method = group_by_method(generations, manifest.settings.run_labels)
    maxima = {m: list(prompt_maxima(g).values()) for m, g in by_method.items()}
    plot_max_toxicity(maxima, scorer, directory / MAX_TOXICITY_PNG)
    plot_emt_tp(report, scorer, directory / EMT_TP_PNG)
    plots = [MAX_TOXICITY_PNG, EMT_TP_PNG]
    layers = {m: chosen_layers(g) for m, g in by_method.items()}
    layers = {m: hs for m, hs in layers.items() if hs[0] or hs[1]}
    if layers:
        plot_ddsc_layers(layers, scorer, directory / DDSC_LAYERS_PNG)
        plots.append(DDSC_LAYERS_PNG)
    frontier = frontier_points(report)
    if len(frontier) > 1:
        plot_frontier(frontier, scorer, directory / FRONTIER_PNG)
        plots.append(FRONTIER_PNG)
    report = report.model_copy(update={"plots": plots, "frontier": frontier})
    markdown = render_markdown(report)
    if len(frontier) > 1:
        markdown += "\n".join(frontier_markdown(frontier)) + "\n"
    write_report_files(directory, report, markdown)
    return report
