"""``detox ddsc generate``: DDSC (or DoLa) layer-contrast decoding of prompts."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from detox_cli.common import prompts_from_options, sample_prompts
from detox_cli.options import (
    AlphaOpt,
    BatchOpt,
    BoostOnlyOpt,
    ChatOpt,
    ContrastTempOpt,
    DeviceOpt,
    DivergenceOpt,
    DtypeOpt,
    EarlyNormOpt,
    GreedyOpt,
    LayersOpt,
    LimitOpt,
    MaxNewOpt,
    ModelOpt,
    OutOpt,
    PenaltyOnlyOpt,
    PresetOpt,
    ProfileOpt,
    PromptOpt,
    PromptsOpt,
    RepPenOpt,
    SafetyOnlyOpt,
    SamplesOpt,
    SeedOpt,
    SelectionOpt,
    TempOpt,
    TopPOpt,
    ToxicLayerOpt,
    WeightOpt,
    ddsc_config,
    ddsc_options,
    decode_config,
)
from detox_ddsc.types import Mode

if TYPE_CHECKING:
    from detox_core.generation import BatchDecoder
    from detox_core.records import Generation

ModeOpt = Annotated[
    Mode, typer.Option("--mode", help="ddsc: contrast z_H + z_T - z_S; dola: contrast z_H only.")
]
ShowLayersOpt = Annotated[
    bool,
    typer.Option("--show-layers", help="Store H/S per step in the records and print a summary."),
]


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


def _keep_layers(decoder: BatchDecoder, show: bool, toxic: int | None) -> BatchDecoder:
    """Keep the per-step layers (and T) in the records only when asked to."""

    def run(texts: list[str], seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        out, extras = decoder(texts, seed)
        for extra in extras:
            if show:
                extra["toxic_layer"] = toxic
            else:
                extra.pop("layers", None)
        return out, extras

    return run


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
    contrast_weight: WeightOpt = None,
    contrast_temperature: ContrastTempOpt = None,
    safety_only: SafetyOnlyOpt = False,
    penalty_only: PenaltyOnlyOpt = False,
    boost_only: BoostOnlyOpt = False,
    divergence: DivergenceOpt = "reference",
    selection: SelectionOpt = "per-row",
    early_norm: EarlyNormOpt = False,
    preset: PresetOpt = "auto",
    alpha: AlphaOpt = None,
    repetition_penalty: RepPenOpt = 1.0,
    chat: ChatOpt = False,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Continue prompts with DDSC (or DoLa) layer-contrast decoding."""
    from detox_core.models import ModelOptions, load_model
    from detox_ddsc.decoder import plan_layers
    from detox_eval.methods import MethodSettings, batch_decoder, check_ddsc_layers, get_method

    items = prompts_from_options(prompt, prompts, limit)
    decode = decode_config(
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        top_p=top_p,
        temperature=temperature,
        seed=seed,
        chat=chat,
        repetition_penalty=repetition_penalty,
    )
    config = ddsc_config(decode, **ddsc_options(locals()), mode=mode)
    check_ddsc_layers(model, config)  # before the weights are loaded
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
    plan = plan_layers(lm.model, config)
    decoder = batch_decoder(get_method(mode), lm, MethodSettings(decode=decode, ddsc=config))
    made = sample_prompts(
        items,
        _keep_layers(decoder, show_layers, plan.toxic),
        samples=samples,
        batch_size=batch_size,
        seed=seed,
        method=mode,
        model_name=model,
        out=out,
    )
    if show_layers and made:
        console = Console(stderr=True)
        console.print(
            f"layers: candidates {list(plan.candidates)}, end {plan.end}, toxic {plan.toxic}"
        )
        console.print(_layer_summary(made))
