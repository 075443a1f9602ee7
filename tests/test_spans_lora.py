"""The token head and LoRA training on a tiny random BERT: the LoRA layout saves an adapter and the
heads only, reloads to the same predictions, and stores the decision rule chosen on dev."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from detox_cmd.spans import (
    SpanDataConfig,
    SpanDetector,
    SpanTrainConfig,
    evaluate_predictions,
    train_detector,
)
from detox_cmd.spans.train import TrainedDetector
from detox_cmd.spans.weights import detector_name, detector_version
from detox_core.data.toxic_spans import read_toxic_spans
from tiny_models import save_tiny_bert, write_tiny_toxic_spans_csv

CONFIG = SpanTrainConfig(
    epochs=6,
    batch_size=8,
    lr=2e-2,
    head_lr=5e-3,
    warmup_ratio=0.0,
    device="cpu",
    head="token",
    lora=True,
    dev_fraction=0.25,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def spans_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_toxic_spans_csv(tmp_path_factory.mktemp("spans") / "spans.csv", 80, seed=2)


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, spans_csv: Path) -> TrainedDetector:
    config = CONFIG.model_copy(update={"encoder": str(tiny_bert_dir)})
    return train_detector(SpanDataConfig(spans=[spans_csv]), config)


def test_lora_trains_the_adapter_only(trained: TrainedDetector) -> None:
    meta = trained.metadata
    assert meta.epoch_losses[-1] < 0.8 * meta.epoch_losses[0]
    encoder = trained.detector.model.encoder
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_token_head_learns_the_toxic_words(
    tiny_bert_dir: Path, spans_csv: Path, tmp_path: Path
) -> None:
    # a random tiny encoder learns too slowly through LoRA alone: train every weight here
    config = CONFIG.model_copy(update={"encoder": str(tiny_bert_dir), "lora": False, "lr": 2e-3})
    detector = train_detector(SpanDataConfig(spans=[spans_csv]), config).detector
    held_out = read_toxic_spans(write_tiny_toxic_spans_csv(tmp_path / "dev.csv", 30, seed=9))
    predictions = detector.predict([r.text for r in held_out])
    assert all(len(p.token_probs or []) == len(p.offsets) for p in predictions)
    result = evaluate_predictions(predictions, [r.spans for r in held_out], detector.decision)
    assert result.span_f1 > 0.8


def test_the_decision_chosen_on_dev_is_stored_and_reported(trained: TrainedDetector) -> None:
    meta = trained.metadata
    assert meta.tuned is not None and meta.dev_tuned is not None
    assert trained.detector.decision == meta.tuned.decision
    assert meta.dev_tuned.span_f1 == pytest.approx(meta.tuned.dev_span_f1)
    # the stored rule is at least as good on dev as the untuned threshold 0.5
    assert meta.dev is not None and meta.dev_tuned.span_f1 >= meta.dev.span_f1 - 1e-9


def test_lora_layout_round_trip(trained: TrainedDetector, tmp_path: Path) -> None:
    out = trained.detector.save(tmp_path / "det", trained.metadata)
    names = {p.name for p in out.iterdir()}
    assert {"detector.json", "heads.safetensors", "adapter_model.safetensors"} <= names
    assert "model.safetensors" not in names  # the encoder is not copied
    stored = json.loads((out / "detector.json").read_text())
    assert stored["model"]["lora"] and stored["model"]["head"] == "token"
    assert stored["decision"] == trained.detector.decision.model_dump(mode="json")
    loaded = SpanDetector.load(out, device="cpu", precision="fp32")
    assert loaded.decision == trained.detector.decision
    assert loaded.name == detector_name(out) == "segment-cnn:det"
    assert loaded.version == detector_version(out) and len(loaded.version) == 12
    texts = ["you stupid fool, we go to the park", "the weather is nice"]
    before, after = trained.detector.predict(texts), loaded.predict(texts)
    for a, b in zip(before, after, strict=True):
        assert a.token_probs == pytest.approx(b.token_probs, abs=1e-5)
        assert a.sentence_prob == pytest.approx(b.sentence_prob, abs=1e-5)
        assert a.toxic_char_ranges(trained.detector.decision) == loaded.toxic_char_ranges(b)
