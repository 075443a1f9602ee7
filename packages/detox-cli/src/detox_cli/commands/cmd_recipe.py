"""``detox cmd recipe``: the whole CMD recipe in one run folder (split, synthesize, train,
evaluate, report), resumable stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from detox_cli.commands.cmd_synthesize import (
    DetectorOpt,
    MaskOpt,
    QuietOpt,
    RephraserOpt,
)
from detox_cli.options import DeviceOpt, DtypeOpt, ModelOpt, ScorerOpt, SeedOpt, dtype_name
from detox_core.scoring import DEFAULT_SCORER

_console = Console(stderr=True)


def recipe(
    prompts: Annotated[
        Path, typer.Option("--prompts", help="RTP JSONL (or detox JSONL with 'toxicity').")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder (rerun the command to resume).")],
    model: ModelOpt = "default",
    scorer: ScorerOpt = DEFAULT_SCORER,
    seed: SeedOpt = 0,
    train_prompts: Annotated[
        int, typer.Option("--train-prompts", min=1, help="Prompts to synthesize chains from.")
    ] = 2000,
    eval_prompts: Annotated[
        int, typer.Option("--eval-prompts", min=1, help="Held-out prompts to evaluate on.")
    ] = 300,
    toxic_share: Annotated[
        float,
        typer.Option("--toxic-share", min=0.0, max=1.0, help="Share of toxic train prompts."),
    ] = 0.5,
    eval_pool: Annotated[
        str,
        typer.Option("--eval-pool", help="toxic (default) or all: where eval prompts come from."),
    ] = "toxic",
    detector: DetectorOpt = None,
    rephraser: RephraserOpt = "prefix:default",
    mask_threshold: MaskOpt = 0.5,
    synth_batch_size: Annotated[
        int,
        typer.Option("--synth-batch-size", min=1, help="Prompts per synthesis generation call."),
    ] = 16,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs (paper 10).")] = 3,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Optimizer steps; overrides --epochs.")
    ] = None,
    lr: Annotated[
        float, typer.Option("--lr", help="Peak learning rate (the paper's code: 5e-4).")
    ] = 2e-3,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Training chains per micro-batch.")
    ] = 8,
    grad_accum: Annotated[
        int, typer.Option("--grad-accum", min=1, help="Micro-batches per optimizer step.")
    ] = 4,
    max_length: Annotated[
        int, typer.Option("--max-length", min=8, help="Max tokens per training chain.")
    ] = 256,
    save_every: Annotated[
        int, typer.Option("--save-every", min=1, help="Checkpoint every N optimizer steps.")
    ] = 10,
    cl_weight: Annotated[
        float, typer.Option("--cl-weight", min=0.0, help="Contrastive weight (paper 1).")
    ] = 1.0,
    no_cl: Annotated[bool, typer.Option("--no-cl", help="LM loss only.")] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", min=1)] = 16,
    lora_targets: Annotated[
        str,
        typer.Option(
            "--lora-target-modules",
            help="Comma-separated, or all-linear (the paper: q_proj,v_proj; c_attn for GPT-2).",
        ),
    ] = "all-linear",
    methods: Annotated[
        str, typer.Option("--methods", help="Evaluated: vanilla, cmd, cmd+ddsc (comma-separated).")
    ] = "vanilla,cmd,cmd+ddsc",
    eval_samples: Annotated[
        int, typer.Option("--eval-samples", min=1, help="Samples per eval prompt.")
    ] = 8,
    eval_batch_size: Annotated[
        int, typer.Option("--eval-batch-size", min=1, help="Sequences per eval forward pass.")
    ] = 8,
    stop_after: Annotated[
        str | None,
        typer.Option("--stop-after", help="split, synthesize, train or eval: stop after it."),
    ] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Run the whole CMD recipe: split the prompts into disjoint train and eval sets, synthesize
    chains, train the adapter, evaluate vanilla / cmd / cmd+ddsc, write OUT/report.md.

    Rerun the same command to resume where it stopped. Under `accelerate launch` synthesis,
    training and evaluation run data-parallel.
    """
    from detox_cmd.synthesis import SynthesisConfig
    from detox_core.errors import DetoxError
    from detox_core.models import ModelOptions
    from detox_eval.cmd_recipe.config import STAGES, recipe_config
    from detox_eval.cmd_recipe.runner import run_recipe
    from detox_eval.cmd_recipe.split import SplitConfig

    stage = next((s for s in STAGES[:-1] if s == stop_after), None)
    if stop_after is not None and stage is None:
        raise DetoxError(
            f"unknown --stop-after stage {stop_after!r}", "use split, synthesize, train or eval"
        )
    split = SplitConfig.model_validate(
        {
            "train_prompts": train_prompts,
            "eval_prompts": eval_prompts,
            "toxic_share": toxic_share,
            "eval_pool": eval_pool,
            "seed": seed,
        }
    )
    synthesis = SynthesisConfig(
        model=model,
        detector=detector,
        rephraser=rephraser,
        scorer=scorer,
        mask_threshold=mask_threshold,
        seed=seed,
        batch_size=synth_batch_size,
        device=device,
        dtype=dtype_name(dtype),
    )
    targets = [t.strip() for t in lora_targets.split(",") if t.strip()] if lora_targets else None
    train: dict[str, Any] = {
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "learning_rate": lr,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "max_length": max_length,
        "save_steps": save_every,
        "cl_weight": cl_weight,
        "use_cl": not no_cl,
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_target_modules": targets,
        "seed": seed,
    }
    eval_settings: dict[str, Any] = {
        "methods": tuple(m.strip() for m in methods.split(",") if m.strip()),
        "samples": eval_samples,
        "scorer": scorer,
        "seed": seed,
        "batch_size": eval_batch_size,
    }
    config = recipe_config(
        prompts, out, split=split, synthesis=synthesis, train=train, eval_settings=eval_settings
    )
    manifest = run_recipe(
        config,
        out,
        options=ModelOptions(device=device, dtype=dtype_name(dtype)),
        stop_after=stage,
        show_progress=not quiet,
        say=_console.print,
    )
    if manifest is None:
        return
    done = [name for name, status in manifest.stages.items() if status.done]
    _console.print(f"stages done: {', '.join(done)}; manifest: {out / 'recipe.json'}")
    if manifest.stages["report"].done:
        _console.print(f"report: {out / 'report.md'}")
