"""The training run folder: its file names, the settings check on resume and the loss log."""

from __future__ import annotations

import json
from pathlib import Path

from detox_cmd.training import checkpoint as ckpt
from detox_cmd.training.config import CMDTrainConfig
from detox_cmd.training.records import LossRecord, TrainRunInfo
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_text, iter_jsonl, read_json_model

LOSSES_FILE = "losses.jsonl"
PLOT_FILE = "losses.png"
CONFIG_FILE = "train_config.json"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"


def normalize_config(config: CMDTrainConfig) -> CMDTrainConfig:
    """Absolute paths, so a resumed run from another directory matches the saved settings."""
    model = config.model
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return config.model_copy(
        update={
            "model": model,
            "data_path": config.data_path.expanduser().resolve(),
            "output_dir": config.output_dir.expanduser().resolve(),
        }
    )


def check_output_dir(out: Path, resume: bool) -> None:
    """Refuse a folder that already holds a run unless resuming it."""
    leftovers = [p for p in (out / ADAPTER_DIR, out / LOSSES_FILE) if p.exists()]
    leftovers += ckpt.list_checkpoints(out / CHECKPOINTS_DIR)
    if leftovers and not resume:
        raise DetoxError(
            f"{out} already holds a training run",
            "pass --resume to continue it, or choose another --out",
        )


def check_resume_settings(out: Path, config: CMDTrainConfig, num_processes: int) -> None:
    """On resume, refuse settings that change the training trajectory."""
    saved_path = out / CONFIG_FILE
    if not config.resume or not saved_path.exists():
        return
    saved = read_json_model(saved_path, TrainRunInfo, "CMD training record")
    before, now = saved.config.trajectory(), config.trajectory()
    changed = [name for name in now if before.get(name) != now[name]]
    if saved.num_processes != num_processes:
        changed.append("number of processes")
    if changed:
        raise DetoxError(
            f"--resume with settings that differ from the saved run: {', '.join(changed)}",
            f"rerun with the settings in {saved_path}, or train into another --out",
        )


def truncate_losses(out: Path, step: int) -> None:
    """Drop log lines written after the checkpoint being resumed."""
    path = out / LOSSES_FILE
    if not path.exists():
        return
    kept = [obj for _, obj in iter_jsonl(path) if int(obj["step"]) <= step]
    # Same line format as JsonlWriter, so a resumed log is byte-identical to a straight one.
    atomic_write_text(path, "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in kept))


def read_losses(out: Path) -> list[LossRecord]:
    """The loss log's records (none before the first step)."""
    path = out / LOSSES_FILE
    if not path.exists():
        return []
    return [LossRecord.model_validate(obj) for _, obj in iter_jsonl(path)]
