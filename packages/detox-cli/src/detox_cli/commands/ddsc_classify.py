"""``detox ddsc classify``: the SafeEdit classification task (METHODS §1.4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_core.data.safeedit import read_safeedit
from detox_core.errors import DetoxError
from detox_core.models import ModelOptions, load_model
from detox_ddsc.classify import ClassifyConfig, Contrast, ToxicMode, classify

DataOpt = Annotated[
    Path, typer.Option("--data", help="SafeEdit JSON (the release format) or JSONL.")
]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="default, a checkpoint dir, a .gguf file or a hub id.")
]
LayersOpt = Annotated[
    str,
    typer.Option(
        "--layers", help="Hidden-state indices, the last one the end layer (default all: MODE-1)."
    ),
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Use the first N instances.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")]
ContrastOpt = Annotated[
    Contrast,
    typer.Option(
        "--contrast",
        help="ddsc (default): the DDSC contrast z_H + z_T - z_S, as the paper describes and the "
        "decoder uses; dola: z_H only, what the reference classification code returns.",
    ),
]
ModeOpt = Annotated[
    ToxicMode,
    typer.Option(
        "--mode", help="dynamic: T located per instance (reference); static: T from a profile."
    ),
]
ProfileOpt = Annotated[
    Path | None, typer.Option("--profile", help="Toxic-layer profile for --mode static.")
]
ChatOpt = Annotated[
    bool, typer.Option("--chat/--no-chat", help="Chat-format the prompt (response = assistant).")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]


def classify_command(
    data: DataOpt,
    model: ModelOpt = "default",
    layers: LayersOpt = "all",
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    contrast: ContrastOpt = "ddsc",
    mode: ModeOpt = "dynamic",
    profile: ProfileOpt = None,
    chat: ChatOpt = True,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Defence rate on SafeEdit pairs: logP(safe) >= logP(unsafe), plain vs. contrastive."""
    if profile is not None and mode != "static":
        raise DetoxError("--profile is only used with --mode static", "add --mode static")
    items = read_safeedit(data, limit=limit)
    config = ClassifyConfig(
        layers=layers,
        contrast=contrast,
        mode=mode,
        profile=str(profile) if profile is not None else None,
        chat=chat,
    )
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
    result = classify(lm.model, lm.tokenizer, items, config, model_name=model)
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json")) + "\n")
        return
    plain, ddsc = result.defense_rate_plain or 0.0, result.defense_rate_ddsc or 0.0
    layer_text = ",".join(str(x) for x in result.layers)
    Console().print(
        f"SafeEdit classification, {result.n} pairs, model {model}, layers {layer_text}, "
        f"T {result.mode}\n"
        f"defence rate plain: {100 * plain:.2f}%\n"
        f"defence rate with the {contrast} contrast: {100 * ddsc:.2f}%"
    )
