"""Safe/unsafe response pairs for locating the toxic layer.

Two formats: SafeEdit (a JSON list of items, or JSONL of items, read by
``detox_core.data.safeedit``; the pair is ``safe generation`` / ``unsafe generation``) and JSONL
with one ``{"safe": ..., "unsafe": ...}`` object a line.
"""

from __future__ import annotations

from pathlib import Path

from detox_core.data.safeedit import read_safeedit
from detox_core.errors import DetoxError
from detox_core.io import iter_jsonl

JSONL_KEYS = ("safe", "unsafe")


def _simple_pairs(path: Path) -> list[tuple[str, str]] | None:
    """``{"safe", "unsafe"}`` JSONL pairs, or None when the file holds SafeEdit items."""
    pairs: list[tuple[str, str]] = []
    for number, obj in iter_jsonl(path):
        if not pairs and "safe" not in obj and "safe generation" in obj:
            return None
        safe, unsafe = obj.get("safe"), obj.get("unsafe")
        if not isinstance(safe, str) or not isinstance(unsafe, str):
            raise DetoxError(
                f"{path}:{number}: expected an object with 'safe' and 'unsafe' strings",
                "fix or remove that line",
            )
        pairs.append((safe, unsafe))
    return pairs


def read_pairs(path: str | Path, limit: int | None = None) -> list[tuple[str, str]]:
    """Read ``(safe, unsafe)`` pairs from SafeEdit JSON/JSONL or ``{"safe", "unsafe"}`` JSONL."""
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"pairs file not found: {path}", "check the path")
    pairs = _simple_pairs(path) if path.suffix == ".jsonl" else None
    if pairs is None:
        pairs = [(i.safe_generation, i.unsafe_generation) for i in read_safeedit(path, limit)]
    if limit is not None:
        pairs = pairs[:limit]
    if not pairs:
        raise DetoxError(f"{path} holds no safe/unsafe pairs", "check the file")
    return pairs
