"""Toxic-span detection for CMD: span datasets, the Segment-CNN, training, the decision rule,
evaluation, and the default (shipped) detector (METHODS §2.1-2.2)."""

from detox_cmd.spans.dataset import SpanDataConfig, SpanExample, build_span_examples
from detox_cmd.spans.decision import SpanDecision
from detox_cmd.spans.default import default_detector, demo_detector
from detox_cmd.spans.detector import SpanDetector, SpanPrediction
from detox_cmd.spans.evaluate import SpanEvalResult, evaluate_predictions, span_f1
from detox_cmd.spans.model import SegmentCNN, SegmentCNNConfig
from detox_cmd.spans.train import SpanTrainConfig, TrainingMetadata, train_detector
from detox_cmd.spans.tuning import DecisionGrid, TunedDecision, choose_decision

__all__ = [
    "DecisionGrid",
    "SegmentCNN",
    "SegmentCNNConfig",
    "SpanDataConfig",
    "SpanDecision",
    "SpanDetector",
    "SpanEvalResult",
    "SpanExample",
    "SpanPrediction",
    "SpanTrainConfig",
    "TrainingMetadata",
    "TunedDecision",
    "build_span_examples",
    "choose_decision",
    "default_detector",
    "demo_detector",
    "evaluate_predictions",
    "span_f1",
    "train_detector",
]
