"""Training checkpoints: adapter, optimizer, scheduler, RNG states and data position.

A checkpoint is written into a hidden temporary folder and renamed into place, so a killed run
never leaves a half-written ``checkpoints/step-NNNNNN``. Every process saves its own RNG state.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detox_cmd.training.records import TrainerState
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, atomic_write_text, read_json_model

PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint after ``step`` optimizer steps."""
    return f"{PREFIX}{step:06d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").exists()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(root: Path) -> Path | None:
    """The newest finished checkpoint, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states of this process."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(np.asarray(keys).copy()), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing an older one."""
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def temp_dir_for(final: Path) -> Path:
    """The hidden folder a checkpoint is assembled in before the rename."""
    return final.with_name(f".tmp-{final.name}")


def write_main_files(
    tmp: Path,
    adapter_model: Any,
    optimizer: Any,
    scheduler: Any,
    state: TrainerState,
    run_info_json: str,
) -> None:
    """Write the process-independent part of a checkpoint into ``tmp`` (main process only)."""
    adapter_model.save_pretrained(str(tmp / "adapter"))
    atomic_write_text(tmp / "adapter" / "train_config.json", run_info_json)
    atomic_write_text(tmp / "train_config.json", run_info_json)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    atomic_write_json(tmp / "state.json", state.model_dump(mode="json"))


def write_rng_file(tmp: Path, rank: int) -> None:
    """Save this process's RNG states into ``tmp``."""
    torch.save(rng_state(), tmp / f"rng_{rank}.pt")


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(checkpoint: Path) -> TrainerState:
    """The TrainerState saved in ``checkpoint``."""
    return read_json_model(checkpoint / "state.json", TrainerState, "training checkpoint state")


def load_into(
    checkpoint: Path, adapter_model: Any, optimizer: Any, scheduler: Any, rank: int
) -> TrainerState:
    """Restore adapter weights, optimizer, scheduler and this process's RNG states."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = checkpoint / "adapter" / "adapter_model.safetensors"
    if not weights.exists():
        raise DetoxError(f"{checkpoint} has no adapter weights", "delete it and resume again")
    device = next(adapter_model.parameters()).device
    set_peft_model_state_dict(adapter_model, load_file(str(weights), device=str(device)))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng_file = checkpoint / f"rng_{rank}.pt"
    if not rng_file.exists():
        rng_file = checkpoint / "rng_0.pt"
    set_rng_state(torch.load(rng_file, weights_only=False))
    return read_state(checkpoint)
