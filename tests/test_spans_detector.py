"""Training a Segment-CNN on a tiny random BERT, predicting, saving and loading, resuming."""

from __future__ import annotations

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
from detox_cmd.spans.model import segment_cnn_loss
from detox_cmd.spans.train import STATE_FILE, TrainedDetector
from detox_core.data.toxic_spans import read_toxic_spans
from detox_core.errors import DetoxError
from tiny_models import save_tiny_bert, write_tiny_toxic_spans_csv

TINY_CONFIG = SpanTrainConfig(
    epochs=6, batch_size=8, lr=2e-3, head_lr=5e-3, warmup_ratio=0.0, device="cpu", seed=0
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def spans_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_toxic_spans_csv(tmp_path_factory.mktemp("spans") / "spans.csv", 60, seed=1)


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, spans_csv: Path) -> TrainedDetector:
    config = TINY_CONFIG.model_copy(update={"encoder": str(tiny_bert_dir)})
    return train_detector(SpanDataConfig(spans=[spans_csv]), config)


def test_training_loss_falls_and_spans_are_learned(
    trained: TrainedDetector, tiny_bert_dir: Path, spans_csv: Path, tmp_path: Path
) -> None:
    losses = trained.metadata.epoch_losses
    assert len(losses) == TINY_CONFIG.epochs
    assert losses[-1] < 0.7 * losses[0]
    held_out = read_toxic_spans(write_tiny_toxic_spans_csv(tmp_path / "dev.csv", 30, seed=7))
    gold = [r.spans for r in held_out]
    trained_f1 = evaluate_predictions(
        trained.detector.predict([r.text for r in held_out]), gold
    ).span_f1
    untrained = train_detector(
        SpanDataConfig(spans=[spans_csv]),
        TINY_CONFIG.model_copy(
            update={"encoder": str(tiny_bert_dir), "epochs": 1, "lr": 1e-9, "head_lr": 1e-9}
        ),
    )
    untrained_f1 = evaluate_predictions(
        untrained.detector.predict([r.text for r in held_out]), gold
    ).span_f1
    assert trained_f1 > untrained_f1 + 0.2


def test_predict_follows_the_interface(trained: TrainedDetector) -> None:
    texts = ["you are a stupid fool.", "", "nice"]
    predictions = trained.detector.predict(texts)
    assert len(predictions) == 3
    first = predictions[0]
    assert first.tokens == ["you", "are", "a", "stupid", "fool", "."]
    assert [texts[0][s:e] for s, e in first.offsets] == first.tokens
    assert len(first.segment_probs) == len(first.offsets) - 1
    assert all(0.0 <= p <= 1.0 for p in first.segment_probs)
    assert 0.0 <= first.sentence_prob <= 1.0
    assert predictions[1].tokens == [] and predictions[1].segment_probs == []
    assert predictions[2].segment_probs == []
    # batching does not change the result
    alone = trained.detector.predict([texts[0]], batch_size=1)[0]
    assert alone.segment_probs == pytest.approx(first.segment_probs, abs=1e-5)


def test_long_texts_are_predicted_in_windows(trained: TrainedDetector) -> None:
    detector = trained.detector
    words = ("we go to the park today and the weather is nice " * 30).split()
    words[200] = "idiot"
    text = " ".join(words)
    (prediction,) = detector.predict([text])
    assert len(prediction.offsets) == len(words) > detector.config.max_length
    assert len(prediction.segment_probs) == len(words) - 1
    # the pairs around the toxic word far beyond the first window are scored like short texts
    near = prediction.segment_probs[199:201]
    assert min(near) > max(prediction.segment_probs[:50])


def test_save_load_round_trip_gives_identical_predictions(
    trained: TrainedDetector, tmp_path: Path
) -> None:
    texts = ["you idiot, we go to the park", "the weather is so nice today"]
    before = trained.detector.predict(texts)
    trained.detector.save(tmp_path / "det", trained.metadata)
    assert (tmp_path / "det" / "training.json").is_file()
    loaded = SpanDetector.load(tmp_path / "det", device="cpu", precision="fp32")
    after = loaded.predict(texts)
    for a, b in zip(before, after, strict=True):
        assert a.tokens == b.tokens and a.offsets == b.offsets
        assert a.segment_probs == pytest.approx(b.segment_probs, abs=1e-6)
        assert a.sentence_prob == pytest.approx(b.sentence_prob, abs=1e-6)
    with pytest.raises(DetoxError):
        SpanDetector.load(tmp_path, device="cpu")


def test_training_resumes_after_the_last_finished_epoch(
    tiny_bert_dir: Path, spans_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = TINY_CONFIG.model_copy(update={"encoder": str(tiny_bert_dir), "epochs": 2})
    data = SpanDataConfig(spans=[spans_csv])
    checkpoint = tmp_path / "state"
    full = train_detector(data, config)

    import detox_cmd.spans.train as train_module

    calls = {"n": 0}
    real_loss = segment_cnn_loss

    def failing_loss(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > full.metadata.steps // 2:  # die during the second epoch
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "segment_cnn_loss", failing_loss)
    with pytest.raises(KeyboardInterrupt):
        train_detector(data, config, checkpoint=checkpoint)
    assert (checkpoint / STATE_FILE).is_file()
    monkeypatch.setattr(train_module, "segment_cnn_loss", real_loss)
    resumed = train_detector(data, config, checkpoint=checkpoint)
    assert not checkpoint.exists()
    assert resumed.metadata.epoch_losses[0] == pytest.approx(full.metadata.epoch_losses[0])
    texts = ["you stupid fool", "we go to the market"]
    for a, b in zip(full.detector.predict(texts), resumed.detector.predict(texts), strict=True):
        assert a.segment_probs == pytest.approx(b.segment_probs, abs=1e-4)


def test_demo_detector_trains_once_then_loads_from_the_cache(
    tiny_bert_dir: Path, spans_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import detox_cmd.spans.default as default_module

    monkeypatch.setenv("DETOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_module, "DEMO_DATA", spans_csv)
    monkeypatch.setattr(
        default_module,
        "DEMO_TRAIN_CONFIG",
        TINY_CONFIG.model_copy(update={"encoder": str(tiny_bert_dir), "epochs": 1}),
    )
    first = default_module.demo_detector(device="cpu")
    cached = tmp_path / "cache" / "detectors" / default_module.default_detector_name()
    assert (cached / "detector.json").is_file()
    assert not list(cached.parent.glob(".*tmp"))

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached detector should have been loaded")

    monkeypatch.setattr(default_module, "train_detector", no_training)
    second = default_module.demo_detector(device="cpu")
    text = ["you stupid fool, we go to the park"]
    assert first.predict(text)[0].segment_probs == pytest.approx(
        second.predict(text)[0].segment_probs, abs=1e-6
    )


@pytest.mark.slow
def test_real_minilm_trains_a_few_steps(tmp_path: Path) -> None:
    """The default encoder (all-MiniLM-L6-v2) with the shipped demo data, a few steps."""
    import csv

    from detox_cmd.spans.default import DEMO_DATA

    with DEMO_DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[:49]
    small = tmp_path / "demo48.csv"
    with small.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    config = SpanTrainConfig(epochs=1, batch_size=8, device="cpu", dev_fraction=0.25)
    trained = train_detector(SpanDataConfig(spans=[small]), config)
    meta = trained.metadata
    assert meta.n_train_texts == 36 and meta.n_dev_texts == 12 and meta.steps >= 5
    assert meta.dev is not None and 0.0 <= meta.dev.span_f1 <= 1.0
    (prediction,) = trained.detector.predict(["What a stupid idiot you are."])
    assert prediction.tokens[:3] == ["what", "a", "stupid"]
    assert len(prediction.segment_probs) == len(prediction.tokens) - 1
    trained.detector.save(tmp_path / "det", meta)
    loaded = SpanDetector.load(tmp_path / "det", device="cpu", precision="fp32")
    (again,) = loaded.predict(["What a stupid idiot you are."])
    assert again.segment_probs == pytest.approx(prediction.segment_probs, abs=1e-5)
