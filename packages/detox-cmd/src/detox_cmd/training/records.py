"""Records written by the trainer: the loss log, the checkpoint state and the run summary."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from detox_cmd.training.config import CMDTrainConfig


class LossRecord(BaseModel):
    """One optimizer step in ``DIR/losses.jsonl`` (``cl`` is None when no group had negatives)."""

    step: int
    epoch: float
    lm: float
    cl: float | None
    total: float
    lr: float
    tokens: int
    cl_groups: int


class TrainRunInfo(BaseModel):
    """``DIR/train_config.json``: the settings and the base model the adapter belongs to."""

    base_model: str
    base_model_source: str
    model_type: str
    lora_target_modules: list[str]
    num_processes: int
    config: CMDTrainConfig


class TrainerState(BaseModel):
    """Where a checkpoint stands: optimizer steps done and the position in the data order."""

    step: int
    epoch: int
    batch_in_epoch: int
    total_steps: int
    tokens: int
    num_processes: int


class TrainResult(BaseModel):
    """What a call to ``train`` did: ``tokens`` over the whole run; ``run_tokens`` chain tokens
    (all processes) trained in this call, in ``run_seconds`` of optimizer steps."""

    output_dir: Path
    steps: int
    total_steps: int
    completed: bool
    tokens: int
    run_tokens: int = 0
    run_seconds: float = 0.0
    adapter_dir: Path | None = None
    last: LossRecord | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """Training throughput of this call (chain tokens per second), None before a step."""
        return self.run_tokens / self.run_seconds if self.run_seconds > 0 else None
