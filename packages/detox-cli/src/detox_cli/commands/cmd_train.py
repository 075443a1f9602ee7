"""``detox cmd train``: CMD fine-tuning (LM loss plus the contrastive loss, LoRA).

Training runs unchanged on one CPU or GPU and on several GPUs under accelerate, e.g.::

    uv run accelerate launch --num_processes 8 -m detox_cli.app cmd train --data train.jsonl --out run
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from detox_cli.options import ModelOpt, SeedOpt


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
        float, typer.Option("--cl-temperature", help="InfoNCE temperature, > 0.")
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
            help="Comma-separated module names, or all-linear (default: c_attn for GPT-2, "
            "q_proj,v_proj else).",
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
            "cl_temperature": cl_temperature,
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
