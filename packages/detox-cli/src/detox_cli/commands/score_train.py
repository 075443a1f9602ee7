"""``detox score train``: train a tox-minilm judge (seeded; reproduces the shipped weights)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from detox_core.errors import DetoxError
from detox_core.scoring.registry import DEFAULT_ENCODER

if TYPE_CHECKING:
    from detox_core.scoring.minilm_train import ExtraSource

DEFAULT_RTP = Path("../shared/data/rtp/prompts_dev.jsonl")


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def train(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the weights to.")],
    rtp: Annotated[
        Path, typer.Option("--rtp", help="RTP JSONL with Perspective scores (the targets).")
    ] = DEFAULT_RTP,
    jigsaw: Annotated[
        Path | None, typer.Option("--jigsaw", help="Jigsaw CSV: 'toxic' labels as extra data.")
    ] = None,
    spans: Annotated[
        Path | None, typer.Option("--spans", help="SemEval toxic-spans CSV: toxic texts.")
    ] = None,
    paradetox: Annotated[
        Path | None, typer.Option("--paradetox", help="ParaDetox TSV: toxic and neutral pairs.")
    ] = None,
    extra_weight: Annotated[
        float, typer.Option("--extra-weight", min=0.0, help="Loss weight of the extra texts.")
    ] = 0.5,
    extra_limit: Annotated[
        int | None, typer.Option("--extra-limit", min=1, help="At most N texts per extra file.")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="lora (fine-tune the encoder) or frozen (head only).")
    ] = "lora",
    encoder: Annotated[
        str, typer.Option("--encoder", help=f"{DEFAULT_ENCODER} or a BERT-style directory.")
    ] = DEFAULT_ENCODER,
    seed: Annotated[int, typer.Option("--seed", help="Split, init and order seed.")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 3,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="First N RTP records.")
    ] = None,
    dev_fraction: Annotated[
        float, typer.Option("--dev-fraction", min=0.0, max=0.9, help="RTP records held out.")
    ] = 0.2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="LoRA learning rate.")] = 5e-4,
    head_lr: Annotated[float, typer.Option("--head-lr", min=0.0)] = 1e-3,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1)] = 8,
    max_length: Annotated[int, typer.Option("--max-length", min=4, max=512)] = 128,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="torch CPU threads (1: reproducible timing).")
    ] = 1,
) -> None:
    """Distil Perspective's RTP scores into all-MiniLM-L6-v2 (+LoRA) and a head."""
    import torch

    from detox_core.scoring.minilm_train import TrainConfig, train_scorer

    if mode not in ("lora", "frozen"):
        raise DetoxError(f"unknown --mode {mode!r}", "use lora or frozen")
    chosen: Literal["lora", "frozen"] = "lora" if mode == "lora" else "frozen"
    torch.set_num_threads(threads)
    extra: dict[ExtraSource, Path] = {}
    for name, path in (("jigsaw", jigsaw), ("spans", spans), ("paradetox", paradetox)):
        if path is not None:
            extra[name] = path  # type: ignore[index]
    config = TrainConfig(
        rtp=rtp,
        extra=extra,
        extra_weight=extra_weight,
        extra_limit=extra_limit,
        encoder=encoder,
        mode=chosen,
        seed=seed,
        dev_fraction=dev_fraction,
        limit=limit,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        lora_r=lora_r,
        max_length=max_length,
    )
    command = "detox " + shlex.join(sys.argv[1:])
    result = train_scorer(config, out, command=command, log=_log)
    summary = f"trained in {result.seconds:.0f} s on {result.n_train} texts"
    if result.dev is not None:
        d = result.dev
        summary += (
            f"; dev ({d.n} texts): auc {d.auc:.4f}, spearman {d.spearman:.4f}, "
            f"pearson {d.pearson:.4f}, mae {d.mae:.4f}"
        )
    _log(f"{summary}; weights in {out} (use --scorer tox-minilm:{out})")
