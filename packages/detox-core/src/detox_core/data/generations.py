"""The project's own generations JSONL (written by ``detox generate`` and the methods)."""

from __future__ import annotations

from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.io import read_jsonl_records
from detox_core.records import Generation


def read_generations(path: str | Path) -> list[Generation]:
    """Read generation records; a malformed line, or a file without any, is a DetoxError naming
    the file (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"generations file not found: {path}", "check the path")
    records = read_jsonl_records(path, Generation)
    if not records:
        raise DetoxError(f"{path} holds no generation records", "check the file")
    return records
