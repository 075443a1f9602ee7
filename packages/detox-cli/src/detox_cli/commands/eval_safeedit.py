"""``detox eval safeedit``: the SafeEdit benchmark for DDSC and DINM (METHODS §1.5, §1.6)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from detox_cli.options import (
    SAFEEDIT_METHODS,
    AlphaOpt,
    BoostOnlyOpt,
    ChatOpt,
    ContrastTempOpt,
    DeviceOpt,
    DinmLrOpt,
    DinmStepsOpt,
    DivergenceOpt,
    DtypeOpt,
    EarlyNormOpt,
    LayersOpt,
    LimitOpt,
    MaxInputOpt,
    MaxNewOpt,
    ModelOpt,
    PenaltyOnlyOpt,
    PresetOpt,
    ProfileOpt,
    RepPenOpt,
    RunOutOpt,
    SafetyOnlyOpt,
    SelectionOpt,
    ToxicLayerOpt,
    WeightOpt,
    checked_scorer_spec,
    ddsc_config,
    ddsc_options,
    decode_config,
    method_settings,
)
from detox_core.errors import DetoxError
from detox_core.scoring.registry import SAFETY_JUDGE
from detox_eval.run_folder import REPORT_JSON, REPORT_MD

if TYPE_CHECKING:
    from detox_eval.safeedit.report import SafeEditReport

ALL_METHODS = "vanilla,ddsc,dinm,dinm+ddsc"

DataOpt = Annotated[
    Path, typer.Option("--data", help="SafeEdit JSON (the release format) or JSONL.")
]
MethodsOpt = Annotated[
    str,
    typer.Option("--methods", help=f"Comma-separated: {', '.join(SAFEEDIT_METHODS)}."),
]
JudgeOpt = Annotated[
    str,
    typer.Option(
        "--judge",
        help="Scorer spec of the safety judge (any --scorer spec, e.g. classifier:PATH[#LABEL] "
        "for a local SafeEdit RoBERTa); label 1 = unsafe when the score is > 0.5.",
        callback=checked_scorer_spec,
    ),
]
ModeOpt = Annotated[
    Literal["dynamic", "static"],
    typer.Option(
        "--mode",
        help="dynamic: locate T per instance from its safe/unsafe pair (MODE-1); static: T from "
        "--toxic-layer, --profile or the shipped default profile (MODE-2).",
    ),
]


def summary(report: SafeEditReport, directory: Path) -> None:
    """Print each method's DS, DG-avg, fluency and time, and where the report is."""
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
    out: RunOutOpt,
    model: ModelOpt = "default",
    methods: MethodsOpt = ALL_METHODS,
    layers: LayersOpt = "all",
    judge: JudgeOpt = SAFETY_JUDGE,
    max_new_tokens: MaxNewOpt = 300,
    max_input_tokens: MaxInputOpt = 2048,
    limit: LimitOpt = None,
    mode: ModeOpt = "dynamic",
    toxic_layer: ToxicLayerOpt = None,
    profile: ProfileOpt = None,
    preset: PresetOpt = "auto",
    alpha: AlphaOpt = None,
    divergence: DivergenceOpt = "reference",
    selection: SelectionOpt = "per-row",
    early_norm: EarlyNormOpt = False,
    contrast_weight: WeightOpt = None,
    contrast_temperature: ContrastTempOpt = None,
    safety_only: SafetyOnlyOpt = False,
    penalty_only: PenaltyOnlyOpt = False,
    boost_only: BoostOnlyOpt = False,
    repetition_penalty: RepPenOpt = 1.0,
    chat: ChatOpt = True,
    dinm_steps: DinmStepsOpt = 10,
    dinm_lr: DinmLrOpt = 5e-4,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """SafeEdit: DS, DG and fluency of vanilla, DDSC, DINM and DINM+DDSC (greedy, resumable)."""
    from detox_core.data.safeedit import read_safeedit
    from detox_core.locking import output_lock
    from detox_core.models import ModelOptions, load_model
    from detox_core.scoring import load_scorer
    from detox_ddsc.dinm import DINMConfig
    from detox_eval.methods import SAFEEDIT_TASK, parse_methods
    from detox_eval.safeedit.report import build_report, write_report
    from detox_eval.safeedit.runner import (
        SafeEditSettings,
        judge_generations,
        open_safeedit_run,
        run_safeedit,
    )

    if (profile is not None or toxic_layer is not None) and mode != "static":
        raise DetoxError("--profile/--toxic-layer are only used with --mode static", "add it")
    chosen = parse_methods(methods, SAFEEDIT_TASK)
    decode = decode_config(
        max_new_tokens=max_new_tokens,
        greedy=True,
        chat=chat,
        repetition_penalty=repetition_penalty,
        max_input_tokens=max_input_tokens,
    )
    ddsc = ddsc_config(decode, **ddsc_options(locals()))
    dinm = DINMConfig(steps=dinm_steps, lr=dinm_lr, chat=chat, max_input_tokens=max_input_tokens)
    settings = SafeEditSettings(
        model=model, mode=mode, method=method_settings(decode, ddsc, dinm=dinm)
    )
    scorer = load_scorer(judge, device=device)  # a bad judge fails before any data is read
    items = read_safeedit(data, limit=limit)
    with output_lock(out):  # one writer per run folder
        open_safeedit_run(out, settings)  # before loading the model: refuse to mix settings
        lm = load_model(model, ModelOptions(device=device, dtype=dtype))
        records = run_safeedit(lm, items, chosen, settings, out)
        judgements = judge_generations(records, scorer)
        judge_name = f"{scorer.name}@{scorer.version}"
        report = build_report(records, judgements, settings, judge_name, chosen)
        write_report(out, report, judgements)
    summary(report, out)
