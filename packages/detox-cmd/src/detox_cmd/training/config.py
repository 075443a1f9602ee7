"""The typed CMD training configuration (TRL-style field names, METHODS §2.7 defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Pooling = Literal["masked", "unmasked"]
MixedPrecision = Literal["auto", "no", "bf16", "fp16"]

# Fields that change the training trajectory; a resumed run must match them exactly.
TRAJECTORY_FIELDS = (
    "model",
    "data_path",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "max_length",
    "append_eos",
    "seed",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "use_cl",
    "cl_weight",
    "cl_temperature",
    "cl_pooling",
    "cl_anchor_tokens",
    "cl_anchor_top_p",
    "cl_anchor_grad",
    "mixed_precision",
)


class CMDTrainConfig(BaseModel):
    """Everything ``detox cmd train`` needs; saved to ``DIR/train_config.json``.

    Defaults follow the paper (METHODS §2.7): LoRA r 8 / alpha 16 / dropout 0.05, lr 5e-4,
    cosine schedule with 3% warmup, 10 epochs, contrastive weight 1 and temperature 1. The
    paper's global batch of 64 is ``per_device_train_batch_size * gradient_accumulation_steps *
    processes`` (e.g. 8 x 8 on one device); the reference code's contrastive weight is 0.5.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "default"
    data_path: Path
    output_dir: Path

    num_train_epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Overrides num_train_epochs when set.")
    learning_rate: float = Field(5e-4, gt=0)
    per_device_train_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_length: int = Field(512, ge=8, description="Chain tokens (input + target) kept per row.")
    append_eos: bool = True
    seed: int = 0
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1)
    gradient_checkpointing: bool = False
    mixed_precision: MixedPrecision = "auto"

    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] | None = None

    use_cl: bool = True
    cl_weight: float = Field(1.0, ge=0)
    cl_temperature: float = Field(1.0, gt=0)
    cl_pooling: Pooling = "masked"
    cl_anchor_tokens: int = Field(20, ge=1)
    cl_anchor_top_p: float = Field(0.9, gt=0, le=1)
    cl_anchor_grad: bool = Field(
        True,
        description="Back-propagate through the anchor's encoding (the sampling itself never).",
    )

    resume: bool = False

    @model_validator(mode="after")
    def _check(self) -> CMDTrainConfig:
        if self.lora_target_modules is not None and not self.lora_target_modules:
            raise ValueError("lora_target_modules must name at least one module")
        return self

    @property
    def contrastive(self) -> bool:
        """True when the contrastive term is computed at all."""
        return self.use_cl and self.cl_weight > 0

    def trajectory(self) -> dict[str, object]:
        """The settings a resumed run must share with the run it continues."""
        data = self.model_dump(mode="json")
        return {name: data[name] for name in TRAJECTORY_FIELDS}
