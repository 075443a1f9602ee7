"""Frozen-encoder probe for issue 14: which offline encoder holds more toxic-span signal?

A linear probe (logistic regression, toxic-class weight 2) on the frozen hidden states of one
layer predicts each token's label (it overlaps a gold toxic character); the marked characters are
the tokens above a threshold plus the gaps between consecutive ones (the shipped detector's rule).
Trained on 2,500 texts of the detector's training split, threshold chosen on its dev split
(`split_dev(..., 0.1, seed=0)`: the same 793 texts), reported on `tsd_trial.csv`. The forward time
of each split is printed too (fp32, one torch thread).

    OMP_NUM_THREADS=1 uv run python benchmarks/spans_encoder_probe.py minilm|smollm OUT.json
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from detox_cmd.spans.dataset import token_labels_from_chars
from detox_cmd.spans.decision import token_chars
from detox_cmd.spans.evaluate import span_f1
from detox_core.data.toxic_spans import ToxicSpansExample, read_toxic_spans

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "toxic_spans"
N_TRAIN = 2500
Split = tuple[list[str], list[set[int]]]
Features = list[tuple[list[tuple[int, int]], list[np.ndarray]]]


def read_splits() -> dict[str, Split]:
    """The detector's train (first 2,500 after a seeded shuffle) and dev texts, and trial.

    The dev indices are `split_dev`'s (every tsd_train row has gold offsets, so it samples the
    row indices with `random.Random(0)`); the probe works on raw texts, not `SpanExample`s.
    """
    rows = read_toxic_spans(DATA / "tsd_train.csv")
    held = set(random.Random(0).sample(range(len(rows)), int(len(rows) * 0.1)))
    train = [i for i in range(len(rows)) if i not in held]
    random.Random(1).shuffle(train)

    def texts_and_gold(chosen: list[ToxicSpansExample]) -> Split:
        return [r.text for r in chosen], [set(r.spans) for r in chosen]

    return {
        "train": texts_and_gold([rows[i] for i in train[:N_TRAIN]]),
        "dev": texts_and_gold([rows[i] for i in sorted(held)]),
        "trial": texts_and_gold(read_toxic_spans(DATA / "tsd_trial.csv")),
    }


def load(which: str) -> tuple[Any, Any, list[int]]:
    """The frozen encoder, its tokenizer and the hidden-state layers to probe."""
    if which == "minilm":
        from detox_core.scoring.minilm import load_encoder

        encoder, tokenizer = load_encoder("all-MiniLM-L6-v2")
        return encoder, tokenizer, [4, 6]
    from detox_core.models import load_model

    lm = load_model("default")
    return lm.model.model, lm.tokenizer, [8, 12, 16, 20, 30]


def features(model: Any, tokenizer: Any, layers: list[int], texts: list[str]) -> Features:
    """Each text's token character offsets (leading spaces dropped) and per-layer states."""
    out: list[Any] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), 16):
        idx = order[start : start + 16]
        enc = tokenizer(
            [texts[i] for i in idx],
            return_offsets_mapping=True,
            truncation=True,
            max_length=256,
            padding=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        for k, i in enumerate(idx):
            mask = enc["attention_mask"][k].bool()
            spans = offsets[k][mask].tolist()
            keep = [j for j, (a, b) in enumerate(spans) if b > a]
            trimmed = []
            for j in keep:
                a, b = spans[j]
                while a < b and texts[i][a].isspace():
                    a += 1
                trimmed.append((a, b))
            out[i] = (trimmed, [hidden[layer][k][mask].float().numpy()[keep] for layer in layers])
    return out


def mean_f1(feats: Features, probs: list[np.ndarray], gold: list[set[int]], thr: float) -> float:
    return float(
        np.mean(
            [
                span_f1(token_chars(f[0], [q > thr for q in p]), g)
                for f, p, g in zip(feats, probs, gold, strict=True)
            ]
        )
    )


def main(which: str, out_path: Path) -> None:
    torch.set_num_threads(1)
    splits = read_splits()
    model, tokenizer, layers = load(which)
    model.eval()
    feats: dict[str, Features] = {}
    seconds: dict[str, float] = {}
    for name, (texts, _gold) in splits.items():
        start = time.perf_counter()
        feats[name] = features(model, tokenizer, layers, texts)
        seconds[name] = round(time.perf_counter() - start, 1)
        print(which, name, len(texts), "texts", seconds[name], "s", flush=True)
    results = []
    for li, layer in enumerate(layers):
        x = np.concatenate([f[1][li] for f in feats["train"]])
        y = np.concatenate(
            [
                token_labels_from_chars(f[0], g)
                for f, g in zip(feats["train"], splits["train"][1], strict=True)
            ]
        )
        mu, sd = x.mean(0), x.std(0) + 1e-6
        probe = LogisticRegression(max_iter=300, C=0.5, class_weight={0: 1, 1: 2})
        probe.fit((x - mu) / sd, y)
        probs = {
            k: [probe.predict_proba((f[1][li] - mu) / sd)[:, 1] for f in feats[k]]
            for k in ("dev", "trial")
        }
        grid = [round(t, 2) for t in np.arange(0.2, 0.9, 0.05)]
        dev_f1, thr = max(
            (mean_f1(feats["dev"], probs["dev"], splits["dev"][1], t), t) for t in grid
        )
        trial_f1 = mean_f1(feats["trial"], probs["trial"], splits["trial"][1], thr)
        row = {
            "layer": layer,
            "dev_f1": round(dev_f1, 4),
            "threshold": thr,
            "trial_f1": round(trial_f1, 4),
        }
        print(which, row, flush=True)
        results.append(row)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    record = {"encoder": which, "forward_seconds_fp32_1_thread": seconds, "probes": results}
    out_path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
