"""``detox score train-safety``: train a safety-minilm judge (seeded; reproduces the shipped one)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from detox_core.errors import DetoxError
from detox_core.scoring.registry import DEFAULT_ENCODER

DEFAULT_HH = Path("../shared/data/hh_harmless/harmless_base_test.jsonl.gz")
DEFAULT_SAFEEDIT = Path("../shared/data/safeedit/safeedit_dev50.json")


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def train_safety(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the weights to.")],
    hh: Annotated[
        Path, typer.Option("--hh", help="hh-rlhf harmless JSONL(.gz): chosen/rejected pairs.")
    ] = DEFAULT_HH,
    safeedit: Annotated[
        Path, typer.Option("--safeedit", help="SafeEdit JSON: unsafe=1 / safe=0 generations.")
    ] = DEFAULT_SAFEEDIT,
    dev_items: Annotated[
        int, typer.Option("--dev-items", min=0, help="SafeEdit items held out (never trained on).")
    ] = 20,
    safeedit_repeat: Annotated[
        int, typer.Option("--safeedit-repeat", min=0, help="SafeEdit train items per epoch, x.")
    ] = 10,
    label_weight: Annotated[
        float, typer.Option("--label-weight", min=0.0, help="Weight of the SafeEdit label BCE.")
    ] = 1.0,
    harmless_answers: Annotated[
        bool,
        typer.Option(
            "--harmless-answers/--no-harmless-answers",
            help="Train items' unrelated knowledge-constrain answers as harmless (label 0).",
        ),
    ] = True,
    hh_limit: Annotated[
        int | None, typer.Option("--hh-limit", min=1, help="First N pairs.")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="lora (fine-tune the encoder) or frozen (head only).")
    ] = "lora",
    encoder: Annotated[
        str, typer.Option("--encoder", help=f"{DEFAULT_ENCODER} or a BERT-style directory.")
    ] = DEFAULT_ENCODER,
    seed: Annotated[int, typer.Option("--seed", help="Split, init and order seed.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="LoRA learning rate.")] = 5e-4,
    head_lr: Annotated[float, typer.Option("--head-lr", min=0.0)] = 1e-3,
    max_length: Annotated[int, typer.Option("--max-length", min=4, max=512)] = 128,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="torch CPU threads (1: reproducible timing).")
    ] = 1,
) -> None:
    """Train safety-minilm on hh-rlhf harmless pairs and labelled SafeEdit generations."""
    import torch

    from detox_core.scoring.safety_train import SafetyTrainConfig, train_safety_scorer

    if mode not in ("lora", "frozen"):
        raise DetoxError(f"unknown --mode {mode!r}", "use lora or frozen")
    chosen: Literal["lora", "frozen"] = "lora" if mode == "lora" else "frozen"
    torch.set_num_threads(threads)
    config = SafetyTrainConfig(
        hh=hh,
        safeedit=safeedit,
        dev_items=dev_items,
        safeedit_repeat=safeedit_repeat,
        label_weight=label_weight,
        harmless_answers=harmless_answers,
        hh_limit=hh_limit,
        encoder=encoder,
        mode=chosen,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        max_length=max_length,
    )
    command = "detox " + shlex.join(sys.argv[1:])
    result = train_safety_scorer(config, out, command=command, log=_log)
    summary = f"trained in {result.seconds:.0f} s"
    if result.dev is not None:
        d = result.dev
        summary += (
            f"; SafeEdit dev ({d.n} items): accuracy {d.accuracy:.3f}, pairwise {d.pairwise:.3f}"
        )
    _log(f"{summary}; weights in {out} (use --scorer safety-minilm:{out})")
