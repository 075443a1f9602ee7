"""Jigsaw Toxic Comment Classification CSV (``id, comment_text, toxic, severe_toxic, ...``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from detox_core.data.csv_rows import iter_csv_rows
from detox_core.errors import DetoxError

JIGSAW_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")


class JigsawComment(BaseModel):
    """One Jigsaw comment; the labels other than ``toxic`` are None where the file lacks them."""

    model_config = ConfigDict(frozen=True)

    id: str
    comment_text: str
    toxic: int
    severe_toxic: int | None = None
    obscene: int | None = None
    threat: int | None = None
    insult: int | None = None
    identity_hate: int | None = None


def _label(value: str, column: str, where: str) -> int:
    if value.strip() not in {"0", "1"}:
        raise DetoxError(f"{where}: {column} must be 0 or 1, found {value!r}", "fix that row")
    return int(value)


def read_jigsaw(path: str | Path, limit: int | None = None) -> list[JigsawComment]:
    """Read a Jigsaw ``train.csv``-style file (``id``, ``comment_text``, ``toxic`` required)."""
    rows: list[JigsawComment] = []
    for line, row in iter_csv_rows(path, ("id", "comment_text", "toxic")):
        where = f"{path}:{line}"
        labels = {name: _label(row[name], name, where) for name in JIGSAW_LABELS if name in row}
        rows.append(JigsawComment(id=row["id"], comment_text=row["comment_text"], **labels))
        if limit is not None and len(rows) >= limit:
            break
    return rows
