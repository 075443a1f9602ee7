"""A trained Segment-CNN ready to predict, saved and loaded as a directory.

Directory layout:
- ``detector.json``: the ``SegmentCNNConfig`` (written last: its presence marks a complete save);
- ``model.safetensors``: every weight (encoder and heads);
- ``config.json`` + tokenizer files: the encoder's architecture and tokenizer;
- ``training.json``: how it was trained (config, data counts, losses, dev metrics), if known.

Texts longer than the encoder window are predicted in overlapping windows (see
``detox_cmd.spans.dataset.token_windows``); a pair seen in several windows gets the mean of its
probabilities and the text's ``sentence_prob`` is the maximum over its windows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from detox_cmd.spans.batching import Window, collate, length_batches, text_windows
from detox_cmd.spans.dataset import special_token_ids, tokenize_texts
from detox_cmd.spans.evaluate import DEFAULT_CHAR_RULE, CharRule, char_ranges, predicted_chars
from detox_cmd.spans.model import SegmentCNN, SegmentCNNConfig
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, read_json_model
from detox_core.models import resolve_device

CONFIG_FILE = "detector.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training.json"


class SpanPrediction(BaseModel):
    """A text's word-pieces, the probability that each adjacent pair is toxic, and the
    probability that the whole text is toxic."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    segment_probs: list[float]
    sentence_prob: float

    def toxic_char_ranges(
        self, threshold: float = 0.5, rule: CharRule = DEFAULT_CHAR_RULE
    ) -> list[tuple[int, int]]:
        """The ``[start, end)`` character ranges marked toxic (see ``evaluate.toxic_tokens``)."""
        return char_ranges(predicted_chars(self, threshold, rule))


class SpanDetector:
    """A Segment-CNN with its tokenizer, on one device, in eval mode."""

    def __init__(self, model: SegmentCNN, tokenizer: Any, device: str | torch.device = "cpu"):
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.specials = special_token_ids(tokenizer)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.model.eval()

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> SpanDetector:
        """Load a detector directory written by ``save`` (``auto``: CUDA when available)."""
        from safetensors.torch import load_model
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path)
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise DetoxError(
                f"{path} is not a span-detector directory (no {CONFIG_FILE}/{WEIGHTS_FILE})",
                "pass a folder written by the span-detector trainer",
            )
        config = read_json_model(path / CONFIG_FILE, SegmentCNNConfig, "span-detector config")
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path)))  # type: ignore[no-untyped-call]
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = SegmentCNN(encoder, config)
        load_model(model, str(path / WEIGHTS_FILE), device="cpu")
        return cls(model, tokenizer, resolve_device(device))

    def save(self, path: str | Path, training: BaseModel | None = None) -> Path:
        """Write the detector directory (weights atomically, ``detector.json`` last)."""
        from safetensors.torch import save_model

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).unlink(missing_ok=True)
        self.model.encoder.config.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))
        tmp = path / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        save_model(self.model, str(tmp))
        os.replace(tmp, path / WEIGHTS_FILE)
        if training is not None:
            atomic_write_json(path / TRAINING_FILE, training.model_dump(mode="json"))
        atomic_write_json(path / CONFIG_FILE, self.config.model_dump(mode="json"))
        return path

    def _windows(self, ids: list[list[int]]) -> list[Window]:
        windows: list[Window] = []
        for index, text_ids in enumerate(ids):
            windows += text_windows(text_ids, self.specials, self.config.max_length, index)
        return windows

    @torch.inference_mode()
    def predict(self, texts: list[str], batch_size: int = 32) -> list[SpanPrediction]:
        """Pair and sentence probabilities for each text (batched, no grad)."""
        tokenized = tokenize_texts(self.tokenizer, texts)
        windows = self._windows([t.ids for t in tokenized])
        sums = [[0.0] * max(len(t.ids) - 1, 0) for t in tokenized]
        counts = [[0] * max(len(t.ids) - 1, 0) for t in tokenized]
        sentence = [0.0] * len(texts)
        self.model.eval()
        for indices in length_batches([len(w.ids) for w in windows], batch_size):
            chunk = [windows[i] for i in indices]
            batch = collate(chunk, self.pad_id)
            output = self.model(
                batch.input_ids.to(self.device), batch.attention_mask.to(self.device)
            )
            pair_probs = torch.softmax(output.segment_logits.float(), dim=-1)[..., 1].cpu()
            text_probs = torch.softmax(output.sentence_logits.float(), dim=-1)[:, 1].cpu()
            for row, window in enumerate(chunk):
                i = window.text_index
                sentence[i] = max(sentence[i], float(text_probs[row]))
                n_pairs = window.end - window.start - 1
                # Position pair j pairs positions j and j+1; real pairs are j = 1..n_pairs.
                for k, prob in enumerate(pair_probs[row, 1 : 1 + n_pairs].tolist()):
                    sums[i][window.start + k] += prob
                    counts[i][window.start + k] += 1
        return [
            SpanPrediction(
                tokens=tok.tokens,
                offsets=tok.offsets,
                segment_probs=[s / c for s, c in zip(sums[i], counts[i], strict=True)],
                sentence_prob=sentence[i],
            )
            for i, tok in enumerate(tokenized)
        ]
