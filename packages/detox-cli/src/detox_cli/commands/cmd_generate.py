"""``detox cmd generate`` (chain inference with a CMD adapter, optionally with DDSC for the
generation part) and ``detox cmd export`` (merge an adapter into its base model)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from detox_cli.common import prompts_from_options, sample_prompts
from detox_cli.options import (
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    GreedyOpt,
    LimitOpt,
    MaxNewOpt,
    OutOpt,
    PromptOpt,
    PromptsOpt,
    RepPenOpt,
    SamplesOpt,
    SeedOpt,
    TempOpt,
    TopPOpt,
    ddsc_config,
    decode_config,
)
from detox_core.errors import DetoxError

if TYPE_CHECKING:
    from detox_core.generation import BatchDecoder

AdapterArgOpt = Annotated[
    Path,
    typer.Option("--adapter", help="A `detox cmd train` output folder (or its adapter/ folder)."),
]
ShowChainOpt = Annotated[
    bool, typer.Option("--show-chain", help="Store the generated chain in extras.chain.")
]
ChainBudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--max-chain-tokens",
        min=2,
        help="Budget of the whole chain (default: max-new-tokens + 2 x prompt tokens + the"
        " template's tokens + 16).",
    ),
]
GenTempOpt = Annotated[
    float | None,
    typer.Option(
        "--generation-temperature",
        help="Sampling temperature of the chain's generation part, > 0 (default: CMD's own, see"
        " the README; the label and the slots use --temperature).",
    ),
]
FreeChainOpt = Annotated[
    bool,
    typer.Option(
        "--free-chain",
        help="Let the model write the chain's fixed text too (the paper's inference); by default"
        " detox writes it and the model fills the slots.",
    ),
]
DdscLayersOpt = Annotated[
    str | None,
    typer.Option(
        "--ddsc-layers",
        help="Decode the generation part with DDSC over these layers (e.g. 0,2,28,29,30).",
    ),
]
DdscToxicOpt = Annotated[
    int | None, typer.Option("--ddsc-toxic-layer", min=0, help="DDSC toxic layer T.")
]
DdscProfileOpt = Annotated[
    Path | None,
    typer.Option("--ddsc-profile", help="DDSC toxic-layer profile (`detox ddsc locate`)."),
]
ExportDtypeOpt = Annotated[
    str, typer.Option("--dtype", help="float32 (default), bfloat16 or float16.")
]


def _keep_chain(decoder: BatchDecoder, show: bool) -> BatchDecoder:
    """Keep the generated chain in the records only when asked to."""

    def run(texts: list[str], seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        out, extras = decoder(texts, seed)
        for extra in extras:
            extra.pop("stopped", None)
            extra.pop("layers", None)
            if not show:
                extra.pop("chain", None)
        return out, extras

    return run


def generate(
    adapter: AdapterArgOpt,
    prompt: PromptOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    samples: SamplesOpt = 1,
    show_chain: ShowChainOpt = False,
    max_new_tokens: MaxNewOpt = 20,
    max_chain_tokens: ChainBudgetOpt = None,
    free_chain: FreeChainOpt = False,
    generation_temperature: GenTempOpt = None,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    greedy: GreedyOpt = False,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    limit: LimitOpt = None,
    repetition_penalty: RepPenOpt = 1.0,
    ddsc_layers: DdscLayersOpt = None,
    ddsc_toxic_layer: DdscToxicOpt = None,
    ddsc_profile: DdscProfileOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Continue prompts with a CMD adapter: the model fills the chain, we keep the generation."""
    from detox_cmd.inference import load_cmd_model
    from detox_core.models import ModelOptions
    from detox_ddsc.decoder import plan_layers
    from detox_eval.methods import CmdSettings, MethodSettings, batch_decoder, get_method

    if ddsc_layers is None and (ddsc_toxic_layer is not None or ddsc_profile is not None):
        raise DetoxError("--ddsc-toxic-layer/--ddsc-profile need --ddsc-layers", "add it")
    items = prompts_from_options(prompt, prompts, limit)
    decode = decode_config(
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        top_p=top_p,
        temperature=temperature,
        seed=seed,
        repetition_penalty=repetition_penalty,
    )
    ddsc = ddsc_config(
        decode, layers=ddsc_layers or "all", toxic_layer=ddsc_toxic_layer, profile=ddsc_profile
    )
    settings = MethodSettings(
        decode=decode,
        ddsc=ddsc,
        cmd=CmdSettings(
            adapter=str(adapter),
            max_chain_tokens=max_chain_tokens,
            guided=not free_chain,
            **(
                {}
                if generation_temperature is None
                else {"generation_temperature": generation_temperature}
            ),
        ),
    )
    lm = load_cmd_model(adapter, ModelOptions(device=device, dtype=dtype))
    method = "cmd" if ddsc_layers is None else "cmd+ddsc"
    if ddsc_layers is not None:
        plan_layers(lm.model, ddsc)  # fail fast on a bad layer list or profile
    made = sample_prompts(
        items,
        _keep_chain(batch_decoder(get_method(method), lm, settings), show_chain),
        samples=samples,
        batch_size=batch_size,
        seed=seed,
        method=method,
        model_name=str(adapter),
        out=out,
    )
    malformed = sum(bool(g.extras.get("malformed")) for g in made)
    if malformed:
        Console(stderr=True).print(
            f"{malformed} of {len(made)} chains were malformed (extras.malformed)"
        )


def export(
    adapter: AdapterArgOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged checkpoint.")],
    dtype: ExportDtypeOpt = "float32",
) -> None:
    """Merge an adapter into its base model; the folder works as `--model DIR`."""
    from detox_cmd.export import export_merged
    from detox_core.models import ModelOptions

    if dtype not in {"float32", "bfloat16", "float16"}:
        raise DetoxError(f"unknown --dtype {dtype!r}", "use float32, bfloat16 or float16")
    path = export_merged(adapter, out, ModelOptions(device="cpu", dtype=dtype))
    Console(stderr=True).print(f"wrote the merged model to {path}")
