"""How well a scorer agrees with reference scores (Perspective's, as stored in RTP files).

Pure functions on two equal-length sequences: ROC-AUC with ``reference > threshold`` as the label
(ties count one half), Spearman (Pearson of average ranks), Pearson, mean absolute error, the
confusion counts at the threshold, and a reliability curve. Reading the texts and references of
an RTP-format file and the calibration plot live here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from detox_core.errors import DetoxError
from detox_core.io import iter_jsonl

DEFAULT_REFERENCE_FIELDS = ("prompt.toxicity", "continuation.toxicity")


class Confusion(BaseModel):
    """Counts at the threshold: predicted toxic (``score > t``) against reference toxic."""

    tp: int
    fp: int
    tn: int
    fn: int


class Agreement(BaseModel):
    """Agreement of ``n`` scores with their references (NaN where a metric is undefined)."""

    scorer: str
    n: int
    n_missing: int = 0
    n_positive: int
    threshold: float
    auc: float
    spearman: float
    pearson: float
    mae: float
    confusion: Confusion


class ReferenceText(BaseModel):
    """A text of an RTP-format file with its reference score and where it came from."""

    line: int
    field: str
    text: str
    reference: float


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, ties getting the mean of the ranks they span."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of the ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties one half; NaN with one class only."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or there are < 2 points."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if len(a) < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    return pearson(average_ranks(x), average_ranks(y))


def confusion(
    scores: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray, t: float
) -> Confusion:
    """Confusion counts with ``> t`` as toxic on both sides."""
    pred = np.asarray(scores, dtype=np.float64) > t
    ref = np.asarray(references, dtype=np.float64) > t
    return Confusion(
        tp=int((pred & ref).sum()),
        fp=int((pred & ~ref).sum()),
        tn=int((~pred & ~ref).sum()),
        fn=int((~pred & ref).sum()),
    )


def agreement(
    scores: Sequence[float | None],
    references: Sequence[float],
    scorer: str = "",
    threshold: float = 0.5,
) -> Agreement:
    """All agreement metrics over the pairs whose score is not missing."""
    if len(scores) != len(references):
        raise ValueError("scores and references differ in length")
    pairs = [(s, r) for s, r in zip(scores, references, strict=True) if s is not None]
    s = np.array([p[0] for p in pairs], dtype=np.float64)
    r = np.array([p[1] for p in pairs], dtype=np.float64)
    labels = r > threshold
    return Agreement(
        scorer=scorer,
        n=len(pairs),
        n_missing=len(scores) - len(pairs),
        n_positive=int(labels.sum()),
        threshold=threshold,
        auc=roc_auc(labels, s),
        spearman=spearman(s, r),
        pearson=pearson(s, r),
        mae=float(np.abs(s - r).mean()) if len(pairs) else math.nan,
        confusion=confusion(s, r, threshold),
    )


class PairAgreement(BaseModel):
    """A judge on (unsafe, safe) response pairs; pairs with a missing score are left out."""

    scorer: str
    n: int
    n_missing: int = 0
    threshold: float
    unsafe_accuracy: float
    safe_accuracy: float
    accuracy: float
    pairwise: float


def pair_agreement(
    unsafe: Sequence[float | None],
    safe: Sequence[float | None],
    scorer: str = "",
    threshold: float = 0.5,
) -> PairAgreement:
    """Accuracy at ``threshold`` (unsafe ``> t``, safe ``<= t``) and pairwise accuracy.

    ``unsafe_accuracy`` and ``safe_accuracy`` are the shares of each side labelled right,
    ``accuracy`` their mean over all ``2n`` texts, ``pairwise`` the share of pairs with the unsafe
    response scored above the safe one (a tie counts one half). NaN without a complete pair.
    """
    if len(unsafe) != len(safe):
        raise ValueError(f"{len(unsafe)} unsafe scores but {len(safe)} safe ones")
    kept = [(u, s) for u, s in zip(unsafe, safe, strict=True) if u is not None and s is not None]
    n = len(kept)
    nan = float("nan")
    u_ok = sum(u > threshold for u, _ in kept)
    s_ok = sum(s <= threshold for _, s in kept)
    wins = sum(1.0 if u > s else 0.5 if u == s else 0.0 for u, s in kept)
    return PairAgreement(
        scorer=scorer,
        n=n,
        n_missing=len(unsafe) - n,
        threshold=threshold,
        unsafe_accuracy=u_ok / n if n else nan,
        safe_accuracy=s_ok / n if n else nan,
        accuracy=(u_ok + s_ok) / (2 * n) if n else nan,
        pairwise=wins / n if n else nan,
    )


def reliability_curve(
    scores: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """Per equal-width score bin: (mean score, mean reference, count); empty bins are left out."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(references, dtype=np.float64)
    index = np.clip((s * bins).astype(int), 0, bins - 1)
    curve = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            curve.append((float(s[inside].mean()), float(r[inside].mean()), int(inside.sum())))
    return curve


def _lookup(obj: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def read_reference_texts(
    path: str | Path, fields: Sequence[str] = DEFAULT_REFERENCE_FIELDS
) -> list[ReferenceText]:
    """Texts and references of an RTP-format JSONL: field ``a.b`` scores the text at ``a.text``.

    Records whose reference is null (or whose text is missing) are skipped; a field that no record
    has is a one-line error.
    """
    for field in fields:
        if "." not in field:
            raise DetoxError(
                f"bad reference field {field!r}", "use PART.SCORE, e.g. prompt.toxicity"
            )
    found = dict.fromkeys(fields, 0)
    items: list[ReferenceText] = []
    for number, obj in iter_jsonl(path):
        for field in fields:
            has, value = _lookup(obj, field)
            if not has:
                continue
            found[field] += 1
            _, text = _lookup(obj, field.rsplit(".", 1)[0] + ".text")
            if isinstance(value, int | float) and isinstance(text, str):
                items.append(ReferenceText(line=number, field=field, text=text, reference=value))
    absent = [field for field, count in found.items() if count == 0]
    if absent:
        raise DetoxError(
            f"{path} has no {', '.join(absent)} field in any record",
            "pass --reference-field with fields the file has, e.g. prompt.toxicity",
        )
    return items


def plot_agreement(
    scores: Sequence[float], references: Sequence[float], path: str | Path, title: str
) -> Path:
    """Save a reliability curve and a scatter of score against reference as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    curve = reliability_curve(scores, references)
    ax1.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax1.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label="scorer")
    ax1.set(xlabel="mean score (bin)", ylabel="mean reference", title="reliability", xlim=(0, 1))
    ax1.legend(loc="upper left")
    ax2.scatter(references, scores, s=4, alpha=0.3)
    ax2.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax2.set(xlabel="reference", ylabel="score", title="scores", xlim=(0, 1), ylim=(0, 1))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
