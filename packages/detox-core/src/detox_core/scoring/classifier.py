"""``classifier:PATH[#LABEL]``: any local sequence-classification checkpoint as a toxicity scorer.

Works with Detoxify-style multi-label checkpoints, SafeEdit's safety judge, hate-speech RoBERTas
and the like. The toxic label is chosen by name (matched case-insensitively against
``config.id2label``) or by index; without one, a label named like a toxic class is used, else
index 1 of a two-label model. Multi-label models (``problem_type`` multi-label, Detoxify-style
label sets, or a single output) use a sigmoid, single-label models a softmax.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from detox_core.errors import DetoxError
from detox_core.models import resolve_device

TOXIC_LABEL_NAMES = ("toxic", "toxicity", "unsafe", "hate", "offensive", "label_1")
_DETOXIFY_LABELS = {
    "severe_toxicity",
    "severe_toxic",
    "identity_attack",
    "identity_hate",
    "obscene",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_UNBOUNDED_LENGTH = 1_000_000


def parse_classifier_spec(spec: str) -> tuple[Path, str | None]:
    """Split ``classifier:PATH[#LABEL]`` into the checkpoint path and the label (or None)."""
    body = spec.removeprefix("classifier:")
    path, _, label = body.rpartition("#") if "#" in body else (body, "", "")
    if not path:
        raise DetoxError(f"bad scorer spec {spec!r}", "use classifier:PATH[#LABEL]")
    return Path(path).expanduser(), (label or None)


def checkpoint_fingerprint(path: Path) -> str:
    """A short hash of the checkpoint's config and its weight files' names, sizes and mtimes."""
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for file in sorted(path.iterdir()):
        if file.is_file() and file.name.endswith(_WEIGHT_SUFFIXES):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def choose_label(id2label: dict[int, str], num_labels: int, label: str | None) -> int:
    """The index of the toxic label: ``label`` by name or index, else the default rule."""
    names = {i: str(name) for i, name in id2label.items()}
    if label is not None:
        if label.lstrip("-").isdigit():
            index = int(label)
            if not 0 <= index < num_labels:
                raise DetoxError(
                    f"label index {index} is out of range for a {num_labels}-label classifier",
                    f"use 0..{num_labels - 1} or a label name: {', '.join(names.values())}",
                )
            return index
        for i, name in names.items():
            if name.lower() == label.lower():
                return i
        raise DetoxError(
            f"the classifier has no label named {label!r}",
            f"use one of: {', '.join(names.values())} (or an index)",
        )
    for wanted in TOXIC_LABEL_NAMES:
        for i, name in names.items():
            if name.lower() == wanted:
                return i
    if num_labels == 2:
        return 1
    if num_labels == 1:
        return 0
    raise DetoxError(
        f"cannot tell which of the {num_labels} labels is the toxic one",
        f"name it: classifier:PATH#LABEL with LABEL one of {', '.join(names.values())}",
    )


def uses_sigmoid(config: Any) -> bool:
    """Multi-label (sigmoid) or single-label (softmax) scoring for this config."""
    if getattr(config, "problem_type", None) == "multi_label_classification":
        return True
    if int(config.num_labels) == 1:
        return True
    labels = {str(name).lower() for name in config.id2label.values()}
    return len(labels & _DETOXIFY_LABELS) > 0


def max_input_length(tokenizer: Any, config: Any) -> int:
    """The longest input the model takes: the tokenizer's limit and the position table's."""
    limits = []
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < _UNBOUNDED_LENGTH:
        limits.append(tok_limit)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-family position ids start after the padding index.
        offset = 2 if config.model_type in {"roberta", "xlm-roberta", "camembert"} else 0
        limits.append(positions - offset)
    return min(limits) if limits else 512


class ClassifierScorer:
    """A local sequence-classification checkpoint; the score is the toxic label's probability."""

    def __init__(
        self,
        path: str | Path,
        label: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise DetoxError(
                f"classifier checkpoint not found: {path}",
                "point classifier:PATH at a local directory with config.json and weights",
            )
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise DetoxError(
                f"could not load classifier {path}: {exc}", "check the checkpoint"
            ) from exc
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.model.eval()
        config = self.model.config
        self.label_index = choose_label(
            {int(k): str(v) for k, v in config.id2label.items()}, int(config.num_labels), label
        )
        self.label_name = str(config.id2label.get(self.label_index, self.label_index))
        self.sigmoid = uses_sigmoid(config)
        self.max_length = max_input_length(self.tokenizer, config)
        self.batch_size = batch_size
        self.name = f"classifier:{path.name}#{self.label_name}"
        self.version = checkpoint_fingerprint(path)

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> list[float | None]:
        """Probability of the toxic label for each text (long texts are truncated)."""
        results: list[float | None] = [None] * len(texts)
        # Length-sorted batches waste less padding; results go back to their input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            logits = self.model(**enc).logits.float()
            if self.sigmoid:
                probs = torch.sigmoid(logits[:, self.label_index])
            else:
                probs = torch.softmax(logits, dim=-1)[:, self.label_index]
            for i, p in zip(chunk, probs.tolist(), strict=True):
                results[i] = float(p)
        return results
