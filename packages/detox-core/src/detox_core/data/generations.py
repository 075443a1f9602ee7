"""The project's own generations JSONL (written by ``detox generate`` and the methods)."""

from __future__ import annotations

from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.io import read_jsonl_records
from detox_core.records import Generation


def read_generations(path: str | Path) -> list[Generation]:
    """Read generation records; a malformed line is a DetoxError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"generations file not found: {path}", "check the path")
    return read_jsonl_records(path, Generation)
