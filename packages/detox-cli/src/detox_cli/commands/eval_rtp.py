"""``detox eval rtp`` (RealToxicityPrompts evaluation of several methods) and ``detox eval merge``
(join the shards of one evaluation into its report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_cli.common import parse_shard
from detox_cli.evaluation_methods import parse_methods
from detox_cli.evaluation_run import run_rtp
from detox_core.evaluation.merge import merge_runs
from detox_core.evaluation.outputs import REPORT_JSON, REPORT_MD, write_report
from detox_core.evaluation.report import EvalReport
from detox_core.evaluation.settings import RtpSettings, Shard
from detox_core.models import ModelOptions

PromptsOpt = Annotated[
    Path, typer.Option("--prompts", help="RTP JSONL (or detox JSONL / text) prompts file.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Run directory (rerun the command to resume).")]
MethodsOpt = Annotated[
    str, typer.Option("--methods", help="Comma-separated: vanilla, ddsc, cmd, cmd+ddsc.")
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Base model spec (default, a checkpoint dir, a .gguf file, a hub id)."
    ),
]
AdapterOpt = Annotated[
    Path | None, typer.Option("--adapter", help="CMD adapter directory (needed by cmd methods).")
]
LayersOpt = Annotated[
    str | None, typer.Option("--ddsc-layers", help="DDSC layers, e.g. 0,2,28,29,30 (default: all).")
]
ToxicLayerOpt = Annotated[
    int | None,
    typer.Option(
        "--ddsc-toxic-layer", min=0, help="DDSC toxic layer T (default: the shipped profile)."
    ),
]
SamplesOpt = Annotated[int, typer.Option("--samples", min=1, help="Samples per prompt.")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)]
TempOpt = Annotated[float, typer.Option("--temperature", min=0.0)]
ScorerOpt = Annotated[
    str,
    typer.Option("--scorer", help="profanity, classifier:PATH (optionally #LABEL) or perspective."),
]
PplOpt = Annotated[
    str, typer.Option("--ppl-model", help="Model that measures continuation perplexity.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Use only the first N prompts.")
]
SeedOpt = Annotated[int, typer.Option("--seed")]
ShardOpt = Annotated[str | None, typer.Option("--shard", help="I/N: run shard I (0-based) of N.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
DirsArg = Annotated[
    list[Path], typer.Argument(help="Shard directories (or a folder holding shard-I-of-N).")
]
MergeOutOpt = Annotated[
    Path, typer.Option("--out", help="Directory for the merged run and its report.")
]


def _summary(report: EvalReport, directory: Path) -> None:
    console = Console(stderr=True)
    for method, splits in report.methods.items():
        m = splits["overall"]
        emt = "-" if m.emt is None else f"{m.emt:.3f}"
        tp = "-" if m.tp_prompt is None else f"{100 * m.tp_prompt:.1f}%"
        console.print(f"{method}: EMT {emt}, TP {tp} ({m.n_prompts} prompts)")
    console.print(f"wrote {directory / REPORT_JSON} and {directory / REPORT_MD}")


def rtp(
    prompts: PromptsOpt,
    out: OutOpt,
    methods: MethodsOpt = "vanilla,ddsc",
    model: ModelOpt = "default",
    adapter: AdapterOpt = None,
    ddsc_layers: LayersOpt = None,
    ddsc_toxic_layer: ToxicLayerOpt = None,
    samples: SamplesOpt = 25,
    max_new_tokens: MaxNewOpt = 20,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    scorer: ScorerOpt = "profanity",
    ppl_model: PplOpt = "default",
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    shard: ShardOpt = None,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Evaluate methods on RealToxicityPrompts: EMT, toxicity probability, PPL, distinct-n."""
    index, count = parse_shard(shard)
    settings = RtpSettings(
        prompts=str(prompts),
        methods=parse_methods(methods),
        model=model,
        adapter=str(adapter) if adapter is not None else None,
        ddsc_layers=ddsc_layers,
        ddsc_toxic_layer=ddsc_toxic_layer,
        samples=samples,
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=max(temperature, 1e-5),
        scorer=scorer,
        ppl_model=ppl_model,
        limit=limit,
        seed=seed,
        batch_size=batch_size,
    )
    options = ModelOptions(device=device, dtype=dtype)
    directory, report, made = run_rtp(settings, out, Shard(index=index, count=count), options)
    console = Console(stderr=True)
    console.print(f"generated {made} new samples")
    if report is None:
        console.print(
            f"shard done: {directory}; join the shards with `detox eval merge {out} --out DIR`"
        )
    else:
        _summary(report, directory)


def merge(dirs: DirsArg, out: MergeOutOpt) -> None:
    """Merge the shards of one `detox eval rtp` run into one report."""
    manifest, generations = merge_runs(dirs, out)
    _summary(write_report(out, generations, manifest), out)
