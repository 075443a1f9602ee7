"""A trained span detector ready to predict: the model, its tokenizer and its decision rule.

Saving and loading (full weights, or a LoRA adapter + heads on the shipped encoder) live in
``detox_cmd.spans.weights``.

Texts longer than the encoder window are predicted in overlapping windows (see
``detox_cmd.spans.dataset.token_windows``); a pair (or token) seen in several windows gets the
mean of its probabilities and the text's ``sentence_prob`` is the maximum over its windows. With
the token head, a pair's probability is the larger of its two tokens' (a pair is toxic when it
overlaps a toxic character).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel

from detox_cmd.spans.batching import Window, collate, length_batches, text_windows
from detox_cmd.spans.dataset import special_token_ids, tokenize_texts
from detox_cmd.spans.decision import SpanDecision, char_ranges, decided_chars
from detox_cmd.spans.model import SegmentCNN

Precision = Literal["auto", "fp32", "bf16"]


class SpanPrediction(BaseModel):
    """A text's word-pieces, the probability that each adjacent pair (and, with the token head,
    each token) is toxic, and the probability that the whole text is toxic."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    segment_probs: list[float]
    sentence_prob: float
    token_probs: list[float] | None = None

    def toxic_char_ranges(self, decision: SpanDecision | None = None) -> list[tuple[int, int]]:
        """The ``[start, end)`` character ranges marked toxic under ``decision``."""
        return char_ranges(decided_chars(self, decision or SpanDecision()))


class SpanDetector:
    """A Segment-CNN with its tokenizer and decision rule, on one device, in eval mode.

    ``precision="auto"`` predicts under bf16 autocast on CPUs with native bf16 (as tox-minilm;
    the version then ends in ``-bf16``), else fp32.
    """

    def __init__(
        self,
        model: SegmentCNN,
        tokenizer: Any,
        device: str | torch.device = "cpu",
        decision: SpanDecision | None = None,
        name: str = "segment-cnn",
        version: str = "untrained",
        precision: Precision = "fp32",
    ):
        from detox_core.scoring.minilm import cpu_has_native_bf16

        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.decision = decision or SpanDecision()
        self.name = name
        self.specials = special_token_ids(tokenizer)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.device = torch.device(device)
        self.bf16 = self.device.type == "cpu" and (
            precision == "bf16" or (precision == "auto" and cpu_has_native_bf16())
        )
        self.version = version + ("-bf16" if self.bf16 else "")
        self.model.to(self.device)
        self.model.eval()

    @classmethod
    def load(
        cls, path: str | Path, device: str = "auto", precision: Precision = "auto"
    ) -> SpanDetector:
        """Load a detector directory (``auto``: CUDA when available; see ``weights``)."""
        from detox_cmd.spans.weights import load_detector

        return load_detector(Path(path), device, precision)

    def save(self, path: str | Path, training: BaseModel | None = None) -> Path:
        """Write the detector directory (see ``weights.save_detector``)."""
        from detox_cmd.spans.weights import save_detector

        return save_detector(self, Path(path), training)

    def toxic_char_ranges(self, prediction: SpanPrediction) -> list[tuple[int, int]]:
        """A prediction's toxic character ranges under this detector's stored decision."""
        return prediction.toxic_char_ranges(self.decision)

    def _windows(self, ids: list[list[int]]) -> list[Window]:
        windows: list[Window] = []
        for index, text_ids in enumerate(ids):
            windows += text_windows(text_ids, self.specials, self.config.max_length, index)
        return windows

    @torch.inference_mode()
    def predict(self, texts: list[str], batch_size: int = 32) -> list[SpanPrediction]:
        """Pair (token) and sentence probabilities for each text (batched, no grad)."""
        tokenized = tokenize_texts(self.tokenizer, texts)
        windows = self._windows([t.ids for t in tokenized])
        token_head = self.config.head == "token"
        width = [len(t.ids) if token_head else max(len(t.ids) - 1, 0) for t in tokenized]
        sums = [[0.0] * n for n in width]
        counts = [[0] * n for n in width]
        sentence = [0.0] * len(texts)
        self.model.eval()
        for indices in length_batches([len(w.ids) for w in windows], batch_size):
            chunk = [windows[i] for i in indices]
            batch = collate(chunk, self.pad_id)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                output = self.model(
                    batch.input_ids.to(self.device), batch.attention_mask.to(self.device)
                )
            probs = torch.softmax(output.segment_logits.float(), dim=-1)[..., 1].cpu()
            text_probs = torch.softmax(output.sentence_logits.float(), dim=-1)[:, 1].cpu()
            for row, window in enumerate(chunk):
                i = window.text_index
                sentence[i] = max(sentence[i], float(text_probs[row]))
                # Pair j pairs positions j and j+1 (real pairs: j = 1..n-1); token j is position
                # j (real tokens: j = 1..n), where n is the window's token count.
                n = window.end - window.start - (0 if token_head else 1)
                for k, prob in enumerate(probs[row, 1 : 1 + n].tolist()):
                    sums[i][window.start + k] += prob
                    counts[i][window.start + k] += 1
        predictions: list[SpanPrediction] = []
        for i, tok in enumerate(tokenized):
            means = [s / c for s, c in zip(sums[i], counts[i], strict=True)]
            pairs = [max(a, b) for a, b in itertools.pairwise(means)] if token_head else means
            predictions.append(
                SpanPrediction(
                    tokens=tok.tokens,
                    offsets=tok.offsets,
                    segment_probs=pairs,
                    sentence_prob=sentence[i],
                    token_probs=means if token_head else None,
                )
            )
        return predictions
