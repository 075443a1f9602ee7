"""``detox ddsc locate`` (the toxic layer from safe/unsafe pairs) and ``detox ddsc bench``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_cli.commands.ddsc_generate import ModeOpt
from detox_cli.options import (
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    LayersOpt,
    ModelOpt,
    ProfileOpt,
    ToxicLayerOpt,
    ddsc_config,
)
from detox_ddsc.types import Clock


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
    from detox_core.io import atomic_write_json
    from detox_core.models import ModelOptions, load_model
    from detox_ddsc.pairs import read_pairs
    from detox_ddsc.toxic_layer import locate_toxic_layer

    items = read_pairs(pairs, limit=limit)
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
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
    toxic_layer: ToxicLayerOpt = None,
    profile: ProfileOpt = None,
    mode: ModeOpt = "ddsc",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Time DDSC against transformers' generate and detox's plain loop (greedy, interleaved) plus
    the extra lm_head rows it needs (torch threads: `detox --threads N ddsc bench ...`)."""
    from detox_core.decoding import DecodeConfig
    from detox_core.models import ModelOptions, load_model
    from detox_ddsc.bench import run_bench
    from detox_eval.methods import check_ddsc_layers

    config = ddsc_config(
        DecodeConfig(greedy=True),
        layers=layers,
        toxic_layer=toxic_layer,
        profile=profile,
        preset="faithful",
        mode=mode,
    )
    check_ddsc_layers(model, config)
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
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
            f"HF generate {result.hf_generate_ms_per_token:.1f} ms/step, detox plain "
            f"{result.vanilla_ms_per_token:.1f} ({result.plain_over_hf:.3f}x), ddsc "
            f"{result.ddsc_ms_per_token:.1f}, extra head {result.extra_head_ms_per_token:.1f}: "
            f"efficiency {result.efficiency:.3f} (vs detox plain {result.efficiency_vs_detox:.3f}; "
            f"strict {result.efficiency_strict:.3f})"
        )
