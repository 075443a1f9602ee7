"""Toxic-span detection for CMD: span datasets, the Segment-CNN, training, evaluation, and the
default detector (METHODS §2.1-2.2)."""

from detox_cmd.spans.dataset import SpanDataConfig, SpanExample, build_span_examples
from detox_cmd.spans.default import default_detector
from detox_cmd.spans.detector import SpanDetector, SpanPrediction
from detox_cmd.spans.evaluate import SpanEvalResult, evaluate_predictions, span_f1
from detox_cmd.spans.model import SegmentCNN, SegmentCNNConfig
from detox_cmd.spans.train import SpanTrainConfig, TrainingMetadata, train_detector

__all__ = [
    "SegmentCNN",
    "SegmentCNNConfig",
    "SpanDataConfig",
    "SpanDetector",
    "SpanEvalResult",
    "SpanExample",
    "SpanPrediction",
    "SpanTrainConfig",
    "TrainingMetadata",
    "build_span_examples",
    "default_detector",
    "evaluate_predictions",
    "span_f1",
    "train_detector",
]
