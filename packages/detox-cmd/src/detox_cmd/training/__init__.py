"""CMD fine-tuning: LoRA on detoxification chains with the contrastive loss (METHODS §2.7)."""

from detox_cmd.training.config import CMDTrainConfig
from detox_cmd.training.records import LossRecord, TrainerState, TrainResult, TrainRunInfo
from detox_cmd.training.trainer import CMDTrainer, train

__all__ = [
    "CMDTrainConfig",
    "CMDTrainer",
    "LossRecord",
    "TrainResult",
    "TrainRunInfo",
    "TrainerState",
    "train",
]
