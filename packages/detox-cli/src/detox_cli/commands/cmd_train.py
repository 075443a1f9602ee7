"""``detox cmd train | generate | export``: CMD fine-tuning, chain inference, adapter merging.

Training runs unchanged on one CPU or GPU and on several GPUs under accelerate, e.g.::

    uv run accelerate launch --num_processes 8 -m detox_cli.app cmd train --data train.jsonl --out run
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from detox_cli.commands.generate import (
    BatchOpt,
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
from detox_core.io import JsonlWriter
from detox_core.models import ModelOptions
from detox_core.records import generation_key

AdapterOpt = Annotated[
    Path,
    typer.Option("--adapter", help="A `detox cmd train` output folder (or its adapter/ folder)."),
]


def train(
    data: Annotated[Path, typer.Option("--data", help="Chain records JSONL (train.jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: adapter, checkpoints, logs.")],
    model: ModelOpt = "default",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs (paper: 10).")] = 10,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps", min=1, help="Optimizer steps; overrides --epochs."),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate.")] = 5e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Per device.")] = 8,
    grad_accum: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.")
    ] = 1,
    cl_weight: Annotated[
        float,
        typer.Option("--cl-weight", min=0.0, help="Contrastive weight (paper 1, code 0.5)."),
    ] = 1.0,
    cl_temperature: Annotated[
        float, typer.Option("--cl-temperature", min=0.0, help="InfoNCE temperature.")
    ] = 1.0,
    cl_pooling: Annotated[
        str,
        typer.Option("--cl-pooling", help="masked (default) or unmasked (the reference's mean)."),
    ] = "masked",
    no_cl: Annotated[bool, typer.Option("--no-cl", help="LM loss only.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint in --out.")
    ] = False,
    save_every: Annotated[
        int | None,
        typer.Option("--save-every", min=1, help="Also checkpoint every N optimizer steps."),
    ] = None,
    seed: SeedOpt = 0,
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="Max tokens per chain.")
    ] = 512,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory.")
    ] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 16,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", min=0.0, max=0.99)] = 0.05,
    lora_targets: Annotated[
        str | None,
        typer.Option(
            "--lora-target-modules",
            help="Comma-separated module names (default: c_attn for GPT-2, q_proj,v_proj else).",
        ),
    ] = None,
    mixed_precision: Annotated[
        str, typer.Option("--mixed-precision", help="auto (bf16 on CUDA), no, bf16 or fp16.")
    ] = "auto",
) -> None:
    """Fine-tune a LoRA adapter on CMD chains (LM + contrastive loss)."""
    from accelerate import PartialState

    from detox_cmd.training import CMDTrainConfig
    from detox_cmd.training import train as run_training

    targets = [t.strip() for t in lora_targets.split(",") if t.strip()] if lora_targets else None
    config = CMDTrainConfig.model_validate(
        {
            "model": model,
            "data_path": data,
            "output_dir": out,
            "num_train_epochs": epochs,
            "max_steps": max_steps,
            "learning_rate": lr,
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": grad_accum,
            "cl_weight": cl_weight,
            "cl_temperature": max(cl_temperature, 1e-6),
            "cl_pooling": cl_pooling,
            "use_cl": not no_cl,
            "resume": resume,
            "save_steps": save_every,
            "seed": seed,
            "max_length": max_length,
            "gradient_checkpointing": gradient_checkpointing,
            "lora_r": lora_r,
            "lora_alpha": lora_alpha,
            "lora_dropout": lora_dropout,
            "lora_target_modules": targets,
            "mixed_precision": mixed_precision,
        }
    )
    result = run_training(config)
    if PartialState().is_main_process:
        last = result.last
        losses = ""
        if last is not None:
            cl = "n/a" if last.cl is None else f"{last.cl:.4f}"
            losses = f" (last step: lm {last.lm:.4f}, cl {cl})"
        speed = result.tokens_per_second
        rate = f", {speed:.0f} tokens/s" if speed is not None else ""
        Console(stderr=True).print(
            f"trained {result.steps} steps{losses}{rate}; adapter in {result.adapter_dir}, "
            f"losses in {result.output_dir / 'losses.jsonl'}"
        )


def generate(
    adapter: AdapterOpt,
    prompt: PromptOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    samples: SamplesOpt = 1,
    show_chain: Annotated[
        bool, typer.Option("--show-chain", help="Store the generated chain in extras.chain.")
    ] = False,
    max_new_tokens: MaxNewOpt = 20,
    max_chain_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-chain-tokens",
            min=2,
            help="Budget of the whole chain (default: max-new-tokens + 2 x prompt tokens + the"
            " template's tokens + 16).",
        ),
    ] = None,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    greedy: GreedyOpt = False,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    limit: LimitOpt = None,
    repetition_penalty: RepPenOpt = 1.0,
    ddsc_layers: Annotated[
        str | None,
        typer.Option(
            "--ddsc-layers",
            help="Decode the generation part with DDSC over these layers (e.g. 0,2,28,29,30).",
        ),
    ] = None,
    ddsc_toxic_layer: Annotated[
        int | None, typer.Option("--ddsc-toxic-layer", min=0, help="DDSC toxic layer T.")
    ] = None,
    ddsc_profile: Annotated[
        Path | None,
        typer.Option("--ddsc-profile", help="DDSC toxic-layer profile (`detox ddsc locate`)."),
    ] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Continue prompts with a CMD adapter: the model writes the chain, we keep the generation."""
    from detox_cmd.inference import generate_chain, load_cmd_model

    items = prompts_from_options(prompt, prompts, limit)
    config = DecodeConfig(
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        top_p=top_p,
        temperature=max(temperature, 1e-5),
        seed=seed,
        repetition_penalty=repetition_penalty,
    )
    lm = load_cmd_model(adapter, ModelOptions(device=device, dtype=dtype))
    ddsc = None
    if ddsc_layers is not None:
        from detox_ddsc import DDSCConfig, plan_layers

        if ddsc_toxic_layer is not None and ddsc_profile is not None:
            raise DetoxError(
                "both --ddsc-toxic-layer and --ddsc-profile were given", "use one of them"
            )
        ddsc = DDSCConfig(
            layers=ddsc_layers,
            toxic_layer=ddsc_toxic_layer,
            profile=str(ddsc_profile) if ddsc_profile is not None else None,
            decode=config,
        )
        plan_layers(lm.model, ddsc)  # fail fast on a bad layer list or profile
    elif ddsc_toxic_layer is not None or ddsc_profile is not None:
        raise DetoxError("--ddsc-toxic-layer/--ddsc-profile need --ddsc-layers", "add it")

    def decode_batch(texts: list[str], batch_seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        outputs = generate_chain(
            lm.model,
            lm.tokenizer,
            texts,
            config.model_copy(update={"seed": batch_seed}),
            ddsc=ddsc,
            max_chain_tokens=max_chain_tokens,
        )
        extras: list[dict[str, Any]] = []
        for output in outputs:
            extra: dict[str, Any] = {"malformed": output.malformed}
            if show_chain:
                extra["chain"] = output.chain
            extras.append(extra)
        return [o.generation for o in outputs], extras

    method = "cmd" if ddsc is None else "cmd+ddsc"
    writer = JsonlWriter(out, key=generation_key) if out is not None else None
    try:
        made = run_sampling(
            items,
            decode_batch,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            method=method,
            model_name=str(adapter),
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
    malformed = sum(bool(g.extras.get("malformed")) for g in made)
    if malformed:
        console.print(f"{malformed} of {len(made)} chains were malformed (extras.malformed)")


def export(
    adapter: AdapterOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the merged checkpoint.")],
    dtype: Annotated[
        str, typer.Option("--dtype", help="float32 (default), bfloat16 or float16.")
    ] = "float32",
) -> None:
    """Merge an adapter into its base model; the folder works as `--model DIR`."""
    from detox_cmd.export import export_merged

    if dtype not in {"float32", "bfloat16", "float16"}:
        raise DetoxError(f"unknown --dtype {dtype!r}", "use float32, bfloat16 or float16")
    path = export_merged(adapter, out, ModelOptions(device="cpu", dtype=dtype))
    Console(stderr=True).print(f"wrote the merged model to {path}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``generate`` and ``export`` to the ``detox cmd`` group."""
    app.command("train")(train)
    app.command("generate")(generate)
    app.command("export")(export)
