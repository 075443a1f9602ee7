"""``detox ddsc``: DDSC layer-contrast decoding (generate), the toxic-layer locator, a benchmark."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from detox_cli.commands.generate import (
    BatchOpt,
    ChatOpt,
    DeviceOpt,
    DtypeOpt,
    GreedyOpt,
    LimitOpt,
    MaxNewOpt,
    ModelOpt,
    OutOpt,
    PromptOpt,
    PromptsOpt,
    RepPenOpt,
    SamplesOpt,
    SeedOpt,
    TempOpt,
    TopPOpt,
)
from detox_cli.common import print_records, prompts_from_options
from detox_core.decoding import DecodeConfig
from detox_core.errors import DetoxError
from detox_core.generation import run_sampling
from detox_core.io import JsonlWriter, atomic_write_json
from detox_core.models import LoadedModel, ModelOptions, load_model, resolve_model_source
from detox_core.records import Generation, generation_key
from detox_ddsc.bench import Clock
from detox_ddsc.config import DDSCConfig, Divergence, Mode, Selection
from detox_ddsc.decoder import generate as ddsc_generate
from detox_ddsc.decoder import plan_layers

app = typer.Typer(
    help="DDSC: detoxification with dynamic safety constraints.", no_args_is_help=True
)

LayersOpt = Annotated[
    str,
    typer.Option(
        "--layers",
        help="Hidden-state indices, increasing, the last one the end layer: e.g. 0,2,28,29,30 "
        "(MODE-2) or all (MODE-1: 0..N).",
    ),
]
ToxicLayerOpt = Annotated[
    int | None,
    typer.Option("--toxic-layer", min=0, help="The toxic layer T (a hidden-state index)."),
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option("--profile", help="A toxic-layer profile from `detox ddsc locate`."),
]
ModeOpt = Annotated[
    Mode,
    typer.Option(
        "--mode",
        help="ddsc: contrast z_H + z_T - z_S; dola: contrast z_H only.",
    ),
]
DivergenceOpt = Annotated[
    Divergence,
    typer.Option(
        "--divergence",
        help="reference: JSD' of the DoLa/DDSC code (mean over the vocabulary); jsd: true JSD.",
    ),
]
SelectionOpt = Annotated[
    Selection,
    typer.Option(
        "--selection",
        help="per-row: H and S per row; batch-mean: the reference (mean over the batch).",
    ),
]
AlphaOpt = Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="APC alpha.")]
EarlyNormOpt = Annotated[
    bool, typer.Option("--early-norm", help="Pass early layers through the final norm.")
]
WeightOpt = Annotated[
    float,
    typer.Option("--contrast-weight", min=0.0, help="w in log p_E - w log q_B (1 = reference)."),
]
ContrastTempOpt = Annotated[
    float,
    typer.Option(
        "--contrast-temperature", min=0.0, help="Divide the contrast score by this (1 = reference)."
    ),
]
ShowLayersOpt = Annotated[
    bool,
    typer.Option("--show-layers", help="Store H/S per step in the records and print a summary."),
]


def _load(model: str, device: str, dtype: str) -> LoadedModel:
    return load_model(model, ModelOptions(device=device, dtype=dtype))


def _check_before_loading(model: str, config: DDSCConfig) -> None:
    """Validate the layer list and the toxic layer from the model's config, before the weights."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(resolve_model_source(model))
    except (OSError, ValueError):
        return  # checked again once the model is loaded
    plan_layers(hf_config, config)


def _layer_summary(made: list[Generation]) -> str:
    """One line per role: how often each layer was chosen, as a share of all steps."""
    lines = []
    for role, index in (("H", 0), ("S", 1)):
        counts: Counter[int] = Counter()
        for gen in made:
            for pair in gen.extras.get("layers", []):
                if pair[index] is not None:
                    counts[int(pair[index])] += 1
        total = sum(counts.values())
        if total:
            shares = ", ".join(
                f"{layer}: {100 * n / total:.0f}%" for layer, n in sorted(counts.items())
            )
            lines.append(f"{role} layer chosen ({total} steps): {shares}")
    return "\n".join(lines)


@app.command("generate")
def generate(
    layers: LayersOpt,
    model: ModelOpt = "default",
    toxic_layer: ToxicLayerOpt = None,
    profile: ProfileOpt = None,
    prompt: PromptOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    samples: SamplesOpt = 1,
    max_new_tokens: MaxNewOpt = 20,
    greedy: GreedyOpt = False,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    mode: ModeOpt = "ddsc",
    show_layers: ShowLayersOpt = False,
    contrast_weight: WeightOpt = 1.0,
    contrast_temperature: ContrastTempOpt = 1.0,
    divergence: DivergenceOpt = "reference",
    selection: SelectionOpt = "per-row",
    early_norm: EarlyNormOpt = False,
    alpha: AlphaOpt = 0.1,
    repetition_penalty: RepPenOpt = 1.0,
    chat: ChatOpt = False,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Continue prompts with DDSC (or DoLa) layer-contrast decoding."""
    if toxic_layer is not None and profile is not None:
        raise DetoxError("both --toxic-layer and --profile were given", "use one of them")
    items = prompts_from_options(prompt, prompts, limit)
    config = DDSCConfig(
        layers=layers,
        toxic_layer=toxic_layer,
        profile=str(profile) if profile is not None else None,
        alpha=max(alpha, 1e-12),
        divergence=divergence,
        selection=selection,
        early_norm=early_norm,
        mode=mode,
        contrast_weight=contrast_weight,
        contrast_temperature=max(contrast_temperature, 1e-5),
        decode=DecodeConfig(
            max_new_tokens=max_new_tokens,
            greedy=greedy,
            top_p=top_p,
            temperature=max(temperature, 1e-5),
            seed=seed,
            chat=chat,
            repetition_penalty=repetition_penalty,
        ),
    )
    _check_before_loading(model, config)
    lm = _load(model, device, dtype)
    plan = plan_layers(lm.model, config)

    def decode_batch(texts: list[str], batch_seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        run_config = config.model_copy(
            update={"decode": config.decode.model_copy(update={"seed": batch_seed})}
        )
        result = ddsc_generate(lm.model, lm.tokenizer, texts, run_config)
        extras: list[dict[str, Any]] = []
        for stopped, trace in zip(result.stopped, result.layers, strict=True):
            extra: dict[str, Any] = {"stopped": stopped}
            if show_layers:
                extra["toxic_layer"] = plan.toxic
                extra["layers"] = [list(pair) for pair in trace]
            extras.append(extra)
        return result.texts, extras

    writer = JsonlWriter(out, key=generation_key) if out is not None else None
    try:
        made = run_sampling(
            items,
            decode_batch,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            method=config.method,
            model_name=model,
            writer=writer,
        )
    finally:
        if writer is not None:
            writer.close()
    console = Console(stderr=True)
    if out is None:
        print_records(made)
    else:
        console.print(f"wrote {len(made)} generations to {out}")
    if show_layers and made:
        console.print(
            f"layers: candidates {list(plan.candidates)}, end {plan.end}, toxic {plan.toxic}"
        )
        console.print(_layer_summary(made))


@app.command("locate")
def locate(
    pairs: Annotated[
        Path,
        typer.Option("--pairs", help='SafeEdit JSON, or JSONL of {"safe": ..., "unsafe": ...}.'),
    ],
    out: Annotated[Path, typer.Option("--out", help="Write the profile JSON here.")],
    model: ModelOpt = "default",
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use the first N pairs.")
    ] = None,
    offset: Annotated[
        int,
        typer.Option(
            "--offset",
            min=0,
            max=1,
            help="T = argmax - offset over hidden states 1..N; 1 is the reference's convention.",
        ),
    ] = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Locate the toxic layer T from safe/unsafe response pairs and save a profile."""
    from detox_ddsc.pairs import read_pairs
    from detox_ddsc.toxic_layer import locate_toxic_layer

    items = read_pairs(pairs, limit=limit)
    lm = _load(model, device, dtype)
    profile = locate_toxic_layer(
        lm.model,
        lm.tokenizer,
        items,
        offset=offset,
        model_name=model,
        source=str(pairs),
        show_progress=True,
    )
    profile = profile.model_copy(
        update={
            "note": f"detox ddsc locate --model {model} --pairs {pairs} --offset {offset}"
            + (f" --limit {limit}" if limit else "")
        }
    )
    atomic_write_json(out, profile.model_dump(mode="json"))
    ranked = sorted(zip(profile.layers, profile.distances, strict=True), key=lambda x: -x[1])[:3]
    top = ", ".join(f"h{layer}: {dist:.1f}" for layer, dist in ranked)
    Console(stderr=True).print(
        f"toxic layer T = {profile.toxic_layer} from {profile.n_pairs} pairs "
        f"(largest mean distances {top}; offset {offset}); wrote {out}"
    )


@app.command("bench")
def bench(
    layers: LayersOpt,
    model: ModelOpt = "default",
    batch_size: BatchOpt = 8,
    new_tokens: Annotated[int, typer.Option("--new-tokens", min=1)] = 32,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON result.")] = False,
    clock: Annotated[
        Clock,
        typer.Option(
            "--clock", help="wall, or cpu: process CPU time (steadier on a shared CPU, 1 thread)."
        ),
    ] = "wall",
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="torch CPU threads (default: torch's choice)."),
    ] = None,
    toxic_layer: ToxicLayerOpt = None,
    profile: ProfileOpt = None,
    mode: ModeOpt = "ddsc",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Time DDSC against plain greedy decoding and the extra lm_head rows it needs."""
    import torch

    from detox_ddsc.bench import run_bench

    if threads is not None:
        torch.set_num_threads(threads)
    config = DDSCConfig(
        layers=layers,
        toxic_layer=toxic_layer,
        profile=str(profile) if profile is not None else None,
        mode=mode,
    )
    _check_before_loading(model, config)
    lm = _load(model, device, dtype)
    result = run_bench(
        lm.model,
        lm.tokenizer,
        config,
        batch=batch_size,
        new_tokens=new_tokens,
        repeats=repeats,
        model_name=model,
        clock=clock,
    )
    text = json.dumps(result.model_dump(mode="json"), indent=None if as_json else 2)
    sys.stdout.write(text + "\n")
    if not as_json:
        Console(stderr=True).print(
            f"vanilla {result.vanilla_ms_per_token:.1f} ms/token, ddsc "
            f"{result.ddsc_ms_per_token:.1f} ms/token, extra head "
            f"{result.extra_head_ms_per_token:.1f} ms/token: efficiency {result.efficiency:.3f}"
        )


from detox_cli.commands import ddsc_classify  # noqa: E402

app.command("classify")(ddsc_classify.classify_command)
