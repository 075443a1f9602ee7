"""SemEval-2021 Task 5 Toxic Spans CSV: ``spans`` (a JSON list of character offsets), ``text``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from detox_core.data.csv_rows import iter_csv_rows
from detox_core.errors import DetoxError


class ToxicSpansExample(BaseModel):
    """A text and the sorted character offsets annotated toxic (empty: no toxic span)."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    spans: list[int]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The toxic offsets as contiguous ``[start, end)`` character ranges."""
        out: list[tuple[int, int]] = []
        for offset in self.spans:
            if out and out[-1][1] == offset:
                out[-1] = (out[-1][0], offset + 1)
            else:
                out.append((offset, offset + 1))
        return out

    @property
    def toxic_mask(self) -> list[bool]:
        """One flag per character of ``text``: inside a toxic span or not."""
        mask = [False] * len(self.text)
        for offset in self.spans:
            mask[offset] = True
        return mask


def _parse_spans(raw: str, text: str, where: str) -> list[int]:
    try:
        spans = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DetoxError(f"{where}: spans is not a JSON list ({exc.msg})", "fix that row") from exc
    if not isinstance(spans, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in spans
    ):
        raise DetoxError(f"{where}: spans must be a JSON list of integers", "fix that row")
    bad = [s for s in spans if not 0 <= s < len(text)]
    if bad:
        raise DetoxError(
            f"{where}: span offset {bad[0]} is outside the text (length {len(text)})",
            "fix that row",
        )
    return sorted(set(spans))


def read_toxic_spans(path: str | Path, limit: int | None = None) -> list[ToxicSpansExample]:
    """Read a SemEval toxic-spans CSV (``tsd_train.csv``/``tsd_trial.csv``); ids are line-based."""
    path = Path(path)
    rows: list[ToxicSpansExample] = []
    for line, row in iter_csv_rows(path, ("spans", "text")):
        where = f"{path}:{line}"
        text = row["text"]
        rows.append(
            ToxicSpansExample(
                id=row.get("id") or f"{path.stem}-{line}",
                text=text,
                spans=_parse_spans(row["spans"], text, where),
            )
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows
