"""Options shared by the command modules, each defined once, and the configs built from them.

A knob has one name everywhere (``--model``, ``--top-p``, ``--layers``, ``--toxic-layer``...), and
``decode_config`` / ``ddsc_config`` / ``method_settings`` are the one place that turns options
into the library's typed configs; out-of-range values are refused by those configs (the error
names the option). Nothing here imports torch: the option types are plain objects and the
builders import the configs when they run, so ``detox --help`` and completion stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from detox_core.errors import DetoxError
from detox_core.scoring.registry import SCORER_SPECS, check_scorer_spec
from detox_core.types import DTypeName
from detox_ddsc.types import Divergence, Preset, Selection

if TYPE_CHECKING:
    from detox_core.decoding import DecodeConfig
    from detox_ddsc.config import DDSCConfig
    from detox_ddsc.dinm import DINMConfig
    from detox_eval.methods import MethodSettings

# The methods of each task, for help texts (the registry, detox_eval.methods, imports torch;
# tests/test_cli_startup.py checks that these match it).
RTP_METHODS = ("vanilla", "ddsc", "dola", "cmd", "cmd+ddsc")
SAFEEDIT_METHODS = ("vanilla", "ddsc", "dola", "dinm", "dinm+ddsc")

# Model and placement
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model spec: default, a checkpoint dir, a .gguf file or a hub id."
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
_DTYPES: dict[str, DTypeName] = {
    "auto": "auto",
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "float16",
}


def dtype_name(value: str) -> DTypeName:
    """The ``--dtype`` value as a ``DTypeName``; an unknown one is a DetoxError."""
    if value not in _DTYPES:
        raise DetoxError(f"unknown dtype {value!r}", "use auto, float32, bfloat16 or float16")
    return _DTYPES[value]


# Inputs and outputs
PromptOpt = Annotated[list[str] | None, typer.Option("--prompt", help="A prompt (repeatable).")]
PromptsOpt = Annotated[
    Path | None,
    typer.Option("--prompts", help="Prompts file: RTP/detox JSONL or one prompt a line."),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Write generations to this JSONL (resumes).")
]
RunOutOpt = Annotated[Path, typer.Option("--out", help="Run folder (rerun the command to resume).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Use only the first N items.")]


def checked_scorer_spec(spec: str) -> str:
    """Refuse an unknown scorer spec while the options are parsed, before any data is read."""
    check_scorer_spec(spec)
    return spec


ScorerOpt = Annotated[
    str,
    typer.Option(
        "--scorer",
        "-s",
        help=f"Toxicity scorer spec: {escape(SCORER_SPECS)}.",
        callback=checked_scorer_spec,
    ),
]
AdapterOpt = Annotated[
    Path | None,
    typer.Option("--adapter", help="CMD adapter folder (`detox cmd train`), for the cmd methods."),
]

# Sampling (DecodeConfig)
SamplesOpt = Annotated[int, typer.Option("--samples", min=1, help="Samples per prompt.")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="New tokens per sample.")]
TopPOpt = Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass, in (0, 1].")]
TempOpt = Annotated[float, typer.Option("--temperature", help="Sampling temperature, > 0.")]
GreedyOpt = Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Base seed (chunk seeds derive from it).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")]
ChatOpt = Annotated[
    bool, typer.Option("--chat/--no-chat", help="Wrap prompts in the model's chat template.")
]
RepPenOpt = Annotated[
    float, typer.Option("--repetition-penalty", help="CTRL repetition penalty (1 = off).")
]
MaxInputOpt = Annotated[
    int, typer.Option("--max-input-tokens", min=1, help="Inputs are truncated to this many tokens.")
]

# DDSC (DDSCConfig)
LayersOpt = Annotated[
    str,
    typer.Option(
        "--layers",
        help="DDSC hidden-state indices, increasing, the last one the end layer: e.g. "
        "0,2,28,29,30 (MODE-2) or all (MODE-1: 0..N).",
    ),
]
ToxicLayerOpt = Annotated[
    int | None,
    typer.Option("--toxic-layer", min=0, help="DDSC toxic layer T (a hidden-state index)."),
]
ProfileOpt = Annotated[
    Path | None,
    typer.Option("--profile", help="DDSC toxic-layer profile from `detox ddsc locate`."),
]
PresetOpt = Annotated[
    Preset,
    typer.Option(
        "--preset",
        help="DDSC contrast settings: faithful (the reference: w 1, alpha 0.1), diverse (w 0.05, "
        "alpha 0.05: keeps most of sampling's diversity), auto (faithful when greedy, diverse "
        "when sampling). --alpha, --contrast-weight, --contrast-temperature override it.",
    ),
]
AlphaOpt = Annotated[
    float | None, typer.Option("--alpha", help="APC alpha, in (0, 1] (default: the preset's).")
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
EarlyNormOpt = Annotated[
    bool, typer.Option("--early-norm", help="Pass early layers through the final norm.")
]
WeightOpt = Annotated[
    float | None,
    typer.Option(
        "--contrast-weight",
        help="w in log p_E - w log q_B (1 = reference), >= 0 (default: the preset's).",
    ),
]
ContrastTempOpt = Annotated[
    float | None,
    typer.Option(
        "--contrast-temperature",
        help="Divide the contrast score by this (1 = reference), > 0 (default: the preset's).",
    ),
]
SafetyOnlyOpt = Annotated[
    bool,
    typer.Option("--safety-only", help="Contrast with z_T - z_S only (no hallucination layer H)."),
]

PenaltyOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--penalty-only",
        help="One-sided contrast: push down tokens the contrast favours, lift none.",
    ),
]
BoostOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--boost-only",
        help="One-sided contrast: lift tokens the contrast disfavours, push none down.",
    ),
]

# DINM (DINMConfig)
DinmStepsOpt = Annotated[int, typer.Option("--dinm-steps", min=1, help="DINM Adam steps.")]
DinmLrOpt = Annotated[
    float, typer.Option("--dinm-lr", help="DINM learning rate (5e-4 Llama, 1e-5 Mistral).")
]


def decode_config(
    *,
    max_new_tokens: int,
    top_p: float = 0.9,
    temperature: float = 1.0,
    greedy: bool = False,
    seed: int = 0,
    chat: bool = False,
    repetition_penalty: float = 1.0,
    max_input_tokens: int | None = None,
) -> DecodeConfig:
    """The sampling settings from the shared options."""
    from detox_core.decoding import DecodeConfig

    extra = {} if max_input_tokens is None else {"max_input_tokens": max_input_tokens}
    return DecodeConfig(
        max_new_tokens=max_new_tokens,
        top_p=top_p,
        temperature=temperature,
        greedy=greedy,
        seed=seed,
        chat=chat,
        repetition_penalty=repetition_penalty,
        **extra,
    )


def ddsc_config(
    decode: DecodeConfig,
    *,
    layers: str = "all",
    toxic_layer: int | None = None,
    profile: Path | None = None,
    preset: Preset = "auto",
    alpha: float | None = None,
    divergence: Divergence = "reference",
    selection: Selection = "per-row",
    early_norm: bool = False,
    contrast_weight: float | None = None,
    contrast_temperature: float | None = None,
    safety_only: bool = False,
    penalty_only: bool = False,
    boost_only: bool = False,
    mode: str = "ddsc",
) -> DDSCConfig:
    """The DDSC settings from the shared options (``--toxic-layer`` or ``--profile``, not both);
    alpha and the contrast weight and temperature come from ``preset`` unless given."""
    from detox_ddsc.config import DDSCConfig, preset_settings

    if toxic_layer is not None and profile is not None:
        raise DetoxError("both --toxic-layer and --profile were given", "use one of them")
    given = {
        "alpha": alpha,
        "contrast_weight": contrast_weight,
        "contrast_temperature": contrast_temperature,
    }
    contrast = preset_settings(preset, decode.greedy)
    contrast.update({k: v for k, v in given.items() if v is not None})
    return DDSCConfig.model_validate(
        {
            "layers": layers,
            "toxic_layer": toxic_layer,
            "profile": str(profile) if profile is not None else None,
            **contrast,
            "divergence": divergence,
            "selection": selection,
            "early_norm": early_norm,
            "safety_only": safety_only,
            "penalty_only": penalty_only,
            "boost_only": boost_only,
            "mode": mode,
            "decode": decode,
        }
    )


DDSC_OPTIONS = (
    "layers",
    "toxic_layer",
    "profile",
    "preset",
    "alpha",
    "divergence",
    "selection",
    "early_norm",
    "contrast_weight",
    "contrast_temperature",
    "safety_only",
    "penalty_only",
    "boost_only",
)


def ddsc_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The DDSC options among a command's parameters (pass ``locals()``), for ``ddsc_config``:
    every command that exposes the DDSC knobs declares them once and builds the config here."""
    return {name: values[name] for name in DDSC_OPTIONS}


def method_settings(
    decode: DecodeConfig,
    ddsc: DDSCConfig,
    adapter: Path | None = None,
    dinm: DINMConfig | None = None,
) -> MethodSettings:
    """Every method's nested config, for the registry."""
    from detox_ddsc.dinm import DINMConfig
    from detox_eval.methods import CmdSettings, MethodSettings

    return MethodSettings(
        decode=decode,
        ddsc=ddsc,
        cmd=CmdSettings(adapter=str(adapter) if adapter is not None else None),
        dinm=dinm or DINMConfig(),
    )
