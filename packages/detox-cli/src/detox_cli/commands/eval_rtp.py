"""``detox eval rtp``: RealToxicityPrompts evaluation of several methods (single process, or
data-parallel under ``accelerate launch``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from detox_cli.options import (
    RTP_METHODS,
    AdapterOpt,
    AlphaOpt,
    BatchOpt,
    BoostOnlyOpt,
    ContrastTempOpt,
    DeviceOpt,
    DivergenceOpt,
    DtypeOpt,
    EarlyNormOpt,
    LimitOpt,
    MaxNewOpt,
    ModelOpt,
    PenaltyOnlyOpt,
    PresetOpt,
    ProfileOpt,
    RepPenOpt,
    RunOutOpt,
    SafetyOnlyOpt,
    SamplesOpt,
    ScorerOpt,
    SeedOpt,
    SelectionOpt,
    TempOpt,
    TopPOpt,
    ToxicLayerOpt,
    WeightOpt,
    ddsc_config,
    ddsc_options,
    decode_config,
    method_settings,
)
from detox_core.errors import DetoxError
from detox_core.scoring import DEFAULT_SCORER
from detox_eval.run_folder import REPORT_JSON, REPORT_MD

if TYPE_CHECKING:
    from detox_eval.rtp.report import EvalReport

PromptsFileOpt = Annotated[
    Path, typer.Option("--prompts", help="RTP JSONL (or detox JSONL / text) prompts file.")
]
MethodsOpt = Annotated[
    str,
    typer.Option("--methods", help=f"Comma-separated: {', '.join(RTP_METHODS)}."),
]
PplOpt = Annotated[
    str, typer.Option("--ppl-model", help="Model that measures continuation perplexity.")
]
SweepOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sweep",
        help='Extra runs of a method with one setting varied, e.g. "ddsc.contrast_weight=0,0.5" '
        'or "vanilla.temperature=0.7,1.3" (repeatable; values split on | when they hold commas).',
    ),
]
DdscLayersOpt = Annotated[
    str,
    typer.Option("--layers", "--ddsc-layers", help="DDSC layers, e.g. 0,2,28,29,30, or all."),
]


def summary(report: EvalReport, directory: Path) -> None:
    """Print each method's headline figures and where the report is."""
    console = Console(stderr=True)
    for method, splits in report.methods.items():
        m = splits["overall"]
        emt = "-" if m.emt is None else f"{m.emt:.3f}"
        tp = "-" if m.tp_prompt is None else f"{100 * m.tp_prompt:.1f}%"
        console.print(f"{method}: EMT {emt}, TP {tp} ({m.n_prompts} prompts)")
    console.print(f"wrote {directory / REPORT_JSON} and {directory / REPORT_MD}")


def rtp(
    prompts: PromptsFileOpt,
    out: RunOutOpt,
    methods: MethodsOpt = "vanilla,ddsc",
    sweep: SweepOpt = None,
    model: ModelOpt = "default",
    adapter: AdapterOpt = None,
    layers: DdscLayersOpt = "all",
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
    samples: SamplesOpt = 25,
    max_new_tokens: MaxNewOpt = 20,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    repetition_penalty: RepPenOpt = 1.0,
    scorer: ScorerOpt = DEFAULT_SCORER,
    ppl_model: PplOpt = "default",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate methods on RealToxicityPrompts: EMT, toxicity probability, PPL, distinct-n,
    and the toxicity / diversity frontier of every run (with --sweep: several settings).

    Under `accelerate launch --num_processes N -m detox_cli.app eval rtp ...` every process
    takes its share and rank 0 writes the merged run and report into --out.
    """
    from detox_core.models import ModelOptions
    from detox_eval.methods import RTP_TASK, get_method, parse_methods
    from detox_eval.rtp.runner import run_rtp
    from detox_eval.rtp.settings import RtpSettings
    from detox_eval.rtp.sweep import parse_sweep, plan_runs

    chosen = parse_methods(methods, RTP_TASK)
    needs_adapter = [m for m in chosen if get_method(m).uses_adapter]
    if needs_adapter and adapter is None:
        raise DetoxError(
            f"method {needs_adapter[0]} needs a trained CMD adapter",
            "pass --adapter DIR (the --out folder of `detox cmd train`) or drop it from --methods",
        )
    decode = decode_config(
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        repetition_penalty=repetition_penalty,
    )
    ddsc = ddsc_config(decode, **ddsc_options(locals()))
    variants = tuple(v for spec in sweep or [] for v in parse_sweep(spec, RTP_TASK))
    settings = RtpSettings(
        prompts=str(prompts),
        methods=chosen,
        variants=variants,
        model=model,
        method=method_settings(decode, ddsc, adapter),
        samples=samples,
        scorer=scorer,
        ppl_model=ppl_model,
        limit=limit,
        seed=seed,
        batch_size=batch_size,
    )
    plan_runs(settings.methods, settings.variants, settings.method)  # bad values fail here
    report, made = run_rtp(settings, out, ModelOptions(device=device, dtype=dtype))
    console = Console(stderr=True)
    console.print(f"generated {made} new samples")
    if report is not None:
        summary(report, out)
