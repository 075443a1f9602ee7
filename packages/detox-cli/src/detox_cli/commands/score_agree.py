"""``detox score agree``: how well a scorer agrees with the Perspective scores of an RTP file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from detox_core.errors import DetoxError
from detox_core.scoring import DEFAULT_SCORER, SCORER_SPECS, load_scorer
from detox_core.scoring.agreement import (
    DEFAULT_REFERENCE_FIELDS,
    Agreement,
    agreement,
    plot_agreement,
    read_reference_texts,
)
from detox_core.scoring.jobs import score_in_batches
from detox_core.scoring.registry import check_scorer_spec

FileArg = Annotated[
    Path, typer.Argument(help="RTP-format JSONL (prompt/continuation with Perspective scores).")
]
ScorerOpt = Annotated[
    str, typer.Option("--scorer", "-s", help=f"Scorer spec: {escape(SCORER_SPECS)}.")
]
FieldsOpt = Annotated[
    str,
    typer.Option(
        "--reference-field",
        help="Comma-separated reference fields; PART.SCORE compares the text at PART.text.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]
PlotOpt = Annotated[
    Path | None, typer.Option("--plot", help="Write a reliability curve and scatter to this PNG.")
]
ThresholdOpt = Annotated[
    float, typer.Option("--threshold", min=0.0, max=1.0, help="Toxic when the score is > this.")
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N texts.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per scorer call.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]


DEFAULT_FIELDS = ",".join(DEFAULT_REFERENCE_FIELDS)


def agreement_json(result: Agreement) -> dict[str, object]:
    """The JSON object of ``--json``: the metrics first, then the details."""
    data = result.model_dump(mode="json")
    keys = ["auc", "spearman", "pearson", "mae", "n", "scorer"]
    return {k: data[k] for k in keys} | {k: v for k, v in data.items() if k not in keys}


def _print_table(result: Agreement, fields: list[str]) -> None:
    table = Table(
        title=f"{result.scorer} against {', '.join(fields)} (toxic: > {result.threshold})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("auc", "spearman", "pearson", "mae"):
        table.add_row(name, f"{getattr(result, name):.4f}")
    c = result.confusion
    table.add_row("n (toxic / missing)", f"{result.n} ({result.n_positive} / {result.n_missing})")
    table.add_row("tp / fp / tn / fn", f"{c.tp} / {c.fp} / {c.tn} / {c.fn}")
    Console().print(table)


def agree(
    file: FileArg,
    scorer: ScorerOpt = DEFAULT_SCORER,
    reference_field: FieldsOpt = DEFAULT_FIELDS,
    as_json: JsonOpt = False,
    plot: PlotOpt = None,
    threshold: ThresholdOpt = 0.5,
    limit: LimitOpt = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "auto",
) -> None:
    """Score an RTP file's texts and compare with its stored Perspective scores."""
    check_scorer_spec(scorer)
    fields = [f.strip() for f in reference_field.split(",") if f.strip()]
    if not fields:
        raise DetoxError("no --reference-field given", "use e.g. prompt.toxicity")
    items = read_reference_texts(file, fields)[:limit]
    if not items:
        raise DetoxError(f"no texts with a reference score in {file}", "check the file")
    scoring = load_scorer(scorer, device=device)
    scores = score_in_batches(scoring, [i.text for i in items], batch_size=batch_size)
    values = [s.value for s in scores]
    label = f"{scoring.name}@{scoring.version}"
    result = agreement(values, [i.reference for i in items], scorer=label, threshold=threshold)
    if plot is not None:
        kept = [(v, i.reference) for v, i in zip(values, items, strict=True) if v is not None]
        plot_agreement([k[0] for k in kept], [k[1] for k in kept], plot, f"{label}, n={result.n}")
    if as_json:
        sys.stdout.write(json.dumps(agreement_json(result)) + "\n")
    else:
        _print_table(result, fields)
    if plot is not None:
        sys.stderr.write(f"plot in {plot}\n")
