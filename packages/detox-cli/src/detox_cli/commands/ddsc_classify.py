"""``detox ddsc classify``: the SafeEdit classification task (METHODS §1.4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_cli.options import (
    ChatOpt,
    DeviceOpt,
    DtypeOpt,
    LayersOpt,
    LimitOpt,
    ModelOpt,
    ProfileOpt,
    ddsc_config,
)
from detox_core.errors import DetoxError
from detox_ddsc.types import Contrast, ScoreNorm, ToxicMode

DataOpt = Annotated[
    Path, typer.Option("--data", help="SafeEdit JSON (the release format) or JSONL.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")]
ContrastOpt = Annotated[
    Contrast,
    typer.Option(
        "--contrast",
        help="ddsc (default): the DDSC contrast z_H + z_T - z_S, as the paper describes and the "
        "decoder uses; dola: z_H only, what the reference classification code returns.",
    ),
]
NormalizeOpt = Annotated[
    ScoreNorm,
    typer.Option(
        "--normalize",
        help="vocab (default, the reference code): log-softmax of the contrast over the whole "
        "vocabulary, then tokens outside the APC head score -1000; head: renormalised over the "
        "APC head.",
    ),
]
ModeOpt = Annotated[
    ToxicMode,
    typer.Option(
        "--mode", help="dynamic: T located per instance (reference); static: T from a profile."
    ),
]


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.2f}%"


def classify_command(
    data: DataOpt,
    model: ModelOpt = "default",
    layers: LayersOpt = "all",
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    contrast: ContrastOpt = "ddsc",
    normalize: NormalizeOpt = "vocab",
    mode: ModeOpt = "dynamic",
    profile: ProfileOpt = None,
    chat: ChatOpt = True,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Defence rate on SafeEdit pairs: logP(safe) >= logP(unsafe), plain vs. contrastive."""
    from detox_core.data.safeedit import read_safeedit
    from detox_core.decoding import DecodeConfig
    from detox_core.models import ModelOptions, load_model
    from detox_ddsc.classify import ClassifyConfig, classify

    if profile is not None and mode != "static":
        raise DetoxError("--profile is only used with --mode static", "add --mode static")
    items = read_safeedit(data, limit=limit)
    ddsc = ddsc_config(
        DecodeConfig(), layers=layers, profile=profile, preset="faithful", mode=contrast
    )
    config = ClassifyConfig(ddsc=ddsc, mode=mode, chat=chat, normalize=normalize)
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
    result = classify(lm.model, lm.tokenizer, items, config, model_name=model)
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json")) + "\n")
        return
    plain, contrasted = result.defense_rate_plain, result.defense_rate_ddsc
    layer_text = ",".join(str(x) for x in result.layers)
    Console().print(
        f"SafeEdit classification, {result.n} pairs, model {model}, layers {layer_text}, "
        f"T {result.mode}, scores normalised over the {result.normalize}\n"
        f"defence rate plain: {_pct(plain)}\n"
        f"defence rate with the {contrast} contrast: {_pct(contrasted)}"
    )
