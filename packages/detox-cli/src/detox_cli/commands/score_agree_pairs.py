"""``detox score agree-pairs``: a judge on a SafeEdit file's unsafe and safe generations."""

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
from detox_core.scoring import SCORER_SPECS, load_scorer
from detox_core.scoring.agreement import PairAgreement, pair_agreement
from detox_core.scoring.jobs import score_in_batches
from detox_core.scoring.registry import SAFETY_JUDGE, check_scorer_spec

FileArg = Annotated[Path, typer.Argument(help="SafeEdit JSON (unsafe and safe generations).")]
ScorerOpt = Annotated[
    str, typer.Option("--scorer", "-s", help=f"Judge spec: {escape(SCORER_SPECS)}.")
]
IdsOpt = Annotated[
    str | None,
    typer.Option("--ids", help="Comma-separated item ids to keep (e.g. a judge's dev items)."),
]


def _print_table(result: PairAgreement) -> None:
    table = Table(title=f"{result.scorer} on SafeEdit pairs (unsafe: > {result.threshold})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("unsafe_accuracy", "safe_accuracy", "accuracy", "pairwise"):
        table.add_row(name, f"{getattr(result, name):.3f}")
    table.add_row("pairs (missing)", f"{result.n} ({result.n_missing})")
    Console().print(table)


def agree_pairs(
    file: FileArg,
    scorer: ScorerOpt = SAFETY_JUDGE,
    ids: IdsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=0.0, max=1.0, help="Unsafe when the score is > this."),
    ] = 0.5,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Accuracy on the unsafe and safe generations of a SafeEdit file, and pairwise accuracy."""
    from detox_core.data.safeedit import read_safeedit

    check_scorer_spec(scorer)
    items = read_safeedit(file)
    if ids is not None:
        try:
            wanted = {int(x) for x in ids.split(",") if x.strip()}
        except ValueError as exc:
            raise DetoxError(f"bad --ids {ids!r}", "use comma-separated integers") from exc
        items = [x for x in items if x.id in wanted]
    if not items:
        raise DetoxError(f"no SafeEdit items in {file}", "check the file and --ids")
    judge = load_scorer(scorer, device=device)
    texts = [x.unsafe_generation for x in items] + [x.safe_generation for x in items]
    values = [s.value for s in score_in_batches(judge, texts, batch_size=batch_size)]
    n = len(items)
    label = f"{judge.name}@{judge.version}"
    result = pair_agreement(values[:n], values[n:], scorer=label, threshold=threshold)
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json")) + "\n")
    else:
        _print_table(result)
