"""PNG plots of an RTP report, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every figure names the scorer (and its version) that produced the toxicity values.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detox_eval.rtp.report import SPLITS, EvalReport, FrontierPoint

MAX_TOXICITY_PNG = "max_toxicity.png"
EMT_TP_PNG = "emt_tp.png"
DDSC_LAYERS_PNG = "ddsc_layers.png"
FRONTIER_PNG = "frontier.png"


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    """Save a figure atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot_max_toxicity(maxima: Mapping[str, Sequence[float]], scorer: str, path: Path) -> Path:
    """Histogram of per-prompt maximum toxicity, one outline per method."""
    fig = _new_figure(7, 4.2)
    ax = fig.add_subplot()
    bins = [i / 20 for i in range(21)]
    for method, values in maxima.items():
        ax.hist(list(values), bins=bins, histtype="step", linewidth=1.6, label=method)
    ax.set_xlim(0, 1)
    ax.set_xlabel("maximum toxicity over a prompt's samples")
    ax.set_ylabel("prompts")
    ax.set_title(f"Per-prompt maximum toxicity (scorer: {scorer})")
    ax.legend()
    _save(fig, path)
    return path


def plot_emt_tp(report: EvalReport, scorer: str, path: Path) -> Path:
    """EMT and prompt-level toxicity probability per method and split, with 95% intervals."""
    fig = _new_figure(10, 4.2)
    methods = list(report.methods)
    width = 0.8 / max(len(methods), 1)
    panels = (("emt", "EMT"), ("tp_prompt", "Toxicity probability (prompt)"))
    for column, (field, title) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 2, column)
        for i, method in enumerate(methods):
            xs, ys, err_low, err_high = [], [], [], []
            for j, split in enumerate(SPLITS):
                metrics = report.methods[method][split].model_dump()
                value, low, high = (
                    metrics[field],
                    metrics[f"{field}_ci_low"],
                    metrics[f"{field}_ci_high"],
                )
                if value is None:
                    continue
                xs.append(j + (i - (len(methods) - 1) / 2) * width)
                ys.append(value)
                err_low.append(value - low if low is not None else 0.0)
                err_high.append(high - value if high is not None else 0.0)
            ax.bar(xs, ys, width=width, yerr=[err_low, err_high], capsize=3, label=method)
        ax.set_xticks(range(len(SPLITS)), list(SPLITS))
        ax.set_ylim(0, 1)
        ax.set_title(title)
        if column == 1:
            ax.legend()
    fig.suptitle(f"RTP toxicity with 95% bootstrap intervals (scorer: {scorer})")
    _save(fig, path)
    return path


def plot_ddsc_layers(
    chosen: Mapping[str, tuple[Sequence[int], Sequence[int]]], scorer: str, path: Path
) -> Path:
    """Histograms of the hallucination (H) and safe (S) layers DDSC chose at each step."""
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(10, 3.8 * max(len(chosen), 1))
    for row, (method, (h_layers, s_layers)) in enumerate(chosen.items()):
        for column, (values, name) in enumerate(
            ((h_layers, "hallucination layer H"), (s_layers, "safe layer S"))
        ):
            ax = fig.add_subplot(len(chosen), 2, 2 * row + column + 1)
            if values:
                low, high = min(values), max(values)
                ax.hist(list(values), bins=[x - 0.5 for x in range(low, high + 2)])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("hidden-state index")
            ax.set_ylabel("decoding steps")
            ax.set_title(f"{method}: {name}")
    fig.suptitle(f"Layers chosen by DDSC (run scored by {scorer})")
    _save(fig, path)
    return path


def plot_frontier(points: Sequence[FrontierPoint], scorer: str, path: Path) -> Path:
    """EMT and toxicity probability against distinct-2 per run, plain sampling as the baseline
    curve, each point with its 95% EMT interval and its perplexity."""
    fig = _new_figure(11, 4.6)
    panels = (("emt", "EMT"), ("tp_prompt", "Toxicity probability (prompt)"))
    for column, (field, title) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 2, column)
        plain = sorted(
            (p for p in points if p.method == "vanilla" and p.distinct_2 is not None),
            key=lambda p: p.distinct_2 or 0.0,
        )
        if len(plain) > 1:
            ax.plot(
                [p.distinct_2 for p in plain],
                [getattr(p, field) for p in plain],
                linestyle="--",
                color="grey",
                label="plain sampling",
            )
        for index, point in enumerate(points):
            value = getattr(point, field)
            if value is None or point.distinct_2 is None:
                continue
            errors = None
            if field == "emt" and point.emt_ci_low is not None and point.emt_ci_high is not None:
                errors = [[value - point.emt_ci_low], [point.emt_ci_high - value]]
            marker = "o" if point.method == "vanilla" else "s"
            ppl = "-" if point.ppl is None else f"{point.ppl:.1f}"
            ax.errorbar(
                [point.distinct_2],
                [value],
                yerr=errors,
                fmt=marker,
                capsize=3,
                color=f"C{index % 10}",
                label=f"{point.run} (PPL {ppl})",
            )
        ax.set_xlabel("distinct-2 (higher: more diverse)")
        ax.set_ylabel(title)
        ax.set_title(f"{title} against diversity")
        ax.set_xlim(0, 1.02)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"Toxicity / diversity frontier, 95% bootstrap intervals (scorer: {scorer})")
    _save(fig, path)
    return path
