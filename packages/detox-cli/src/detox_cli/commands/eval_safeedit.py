"""``detox eval safeedit``: the SafeEdit benchmark for DDSC and DINM (METHODS §1.5, §1.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_core.errors import DetoxError
from detox_core.models import ModelOptions, load_model
from detox_core.scoring import load_scorer
from detox_ddsc.dinm import DINMConfig
from detox_ddsc.safeedit import (
    METHODS,
    REPORT_JSON,
    REPORT_MD,
    SafeEditReport,
    SafeEditSettings,
    ToxicMode,
    build_report,
    check_run_settings,
    judge_generations,
    load_instances,
    parse_methods,
    run_safeedit,
    write_report,
)

ALL_METHODS = ",".join(METHODS)

DataOpt = Annotated[
    Path, typer.Option("--data", help="SafeEdit JSON (the release format) or JSONL.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Run directory (rerun the command to resume).")]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="default, a checkpoint dir, a .gguf file or a hub id.")
]
MethodsOpt = Annotated[
    str, typer.Option("--methods", help="Comma-separated: vanilla, ddsc, dinm, dinm+ddsc.")
]
LayersOpt = Annotated[
    str,
    typer.Option(
        "--layers",
        help="DDSC hidden-state indices, the last one the end layer: all (MODE-1, default) or a "
        "short list such as 0,2,28,31,32 (the paper's MODE-2 for a 32-block model).",
    ),
]
JudgeOpt = Annotated[
    str,
    typer.Option(
        "--judge",
        help="Scorer spec of the safety judge: profanity, classifier:PATH[#LABEL] (e.g. a local "
        "SafeEdit RoBERTa) or perspective; label 1 = unsafe when the score is > 0.5.",
    ),
]
MaxNewOpt = Annotated[
    int, typer.Option("--max-new-tokens", min=1, help="300 in the reference; less for CPU runs.")
]
MaxInputOpt = Annotated[
    int, typer.Option("--max-input-tokens", min=1, help="Inputs are truncated to this.")
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Use the first N instances.")]
ModeOpt = Annotated[
    ToxicMode,
    typer.Option(
        "--mode",
        help="dynamic: locate T per instance from its safe/unsafe pair (MODE-1); static: T from "
        "--profile or the shipped default profile (MODE-2).",
    ),
]
ProfileOpt = Annotated[
    Path | None, typer.Option("--profile", help="Toxic-layer profile for --mode static.")
]
ChatOpt = Annotated[
    bool, typer.Option("--chat/--no-chat", help="Wrap inputs in the model's chat template.")
]
DinmStepsOpt = Annotated[int, typer.Option("--dinm-steps", min=1, help="DINM Adam steps.")]
DinmLrOpt = Annotated[
    float, typer.Option("--dinm-lr", min=0.0, help="DINM learning rate (5e-4 Llama, 1e-5 Mistral).")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]


def _summary(report: SafeEditReport, directory: Path) -> None:
    console = Console(stderr=True)
    for method, result in report.methods.items():
        ds, dg = result.scores.get("DS"), result.scores.get("DG_avg")
        console.print(
            f"{method}: DS {'-' if ds is None else f'{ds:.2f}'}, "
            f"DG-avg {'-' if dg is None else f'{dg:.2f}'}, "
            f"fluency {'-' if result.fluency is None else f'{result.fluency:.2f}'}, "
            f"{result.seconds:.1f} s ({result.n_instances} instances)"
        )
    console.print(f"wrote {directory / REPORT_JSON} and {directory / REPORT_MD}")


def safeedit(
    data: DataOpt,
    out: OutOpt,
    model: ModelOpt = "default",
    methods: MethodsOpt = ALL_METHODS,
    layers: LayersOpt = "all",
    judge: JudgeOpt = "profanity",
    max_new_tokens: MaxNewOpt = 300,
    max_input_tokens: MaxInputOpt = 2048,
    limit: LimitOpt = None,
    mode: ModeOpt = "dynamic",
    profile: ProfileOpt = None,
    chat: ChatOpt = True,
    dinm_steps: DinmStepsOpt = 10,
    dinm_lr: DinmLrOpt = 5e-4,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """SafeEdit: DS, DG and fluency of vanilla, DDSC, DINM and DINM+DDSC (greedy, resumable)."""
    if profile is not None and mode != "static":
        raise DetoxError("--profile is only used with --mode static", "add --mode static")
    chosen = parse_methods(methods)
    items = load_instances(data, limit=limit)
    settings = SafeEditSettings(
        model=model,
        mode=mode,
        layers=layers,
        profile=str(profile) if profile is not None else None,
        max_new_tokens=max_new_tokens,
        max_input_tokens=max_input_tokens,
        chat=chat,
        dinm=DINMConfig(
            steps=dinm_steps, lr=max(dinm_lr, 1e-12), chat=chat, max_input_tokens=max_input_tokens
        ),
    )
    check_run_settings(out, settings)  # before loading anything: refuse to mix settings
    scorer = load_scorer(judge, device=device)  # fail before generating on a bad judge
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
    records = run_safeedit(lm.model, lm.tokenizer, items, chosen, settings, out)
    judgements = judge_generations(records, scorer)
    report = build_report(records, judgements, settings, f"{scorer.name}@{scorer.version}", chosen)
    write_report(out, report, judgements)
    _summary(report, out)
