"""Atomic writes and resumable JSONL output.

A JSONL output is appended one complete line per ``os.write`` (so a killed process cannot leave
half a record behind in practice) and, on reopening, any trailing partial line is cut off before
new records are appended. ``JsonlWriter.done`` holds the keys of the records already written, so a
restarted job can skip them.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from detox_core.errors import DetoxError

M = TypeVar("M", bound=BaseModel)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


MAX_LINE_CHARS = 16 * 1024 * 1024  # a longer "line" is not a record of ours


def read_text(path: str | Path) -> str:
    """A text file's contents: UTF-8 (a BOM is dropped) or UTF-16 with its BOM.

    Other encodings (e.g. Latin-1) and NUL bytes are a DetoxError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"file not found: {path}", "check the path")
    data = path.read_bytes()
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DetoxError(
            f"{path}:{line}: not {'UTF-16' if utf16 else 'UTF-8'} text "
            f"(byte 0x{data[exc.start]:02x})",
            "save the file as UTF-8",
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DetoxError(f"{path}:{line}: NUL byte in the text", "is this a binary file?")
    return text


def iter_text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` of a text file (see ``read_text``), without line endings."""
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        yield number, line.rstrip("\r")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-empty line; a bad line is a DetoxError."""
    path = Path(path)
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            raise DetoxError(
                f"{path}:{number}: line of {len(line):,} characters", "is this the right file?"
            )
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            hint = "fix or remove that line"
            if number == 1 and line.lstrip().startswith("["):
                hint = "this looks like a JSON array; write one JSON object per line (JSONL)"
            raise DetoxError(f"{path}:{number}: malformed JSON line ({exc.msg})", hint) from exc
        if not isinstance(obj, dict):
            raise DetoxError(
                f"{path}:{number}: expected a JSON object", "each line must be one object"
            )
        yield number, obj


def read_jsonl_records(path: str | Path, model: type[M]) -> list[M]:
    """Read a JSONL file into pydantic records; a line that does not validate names its line."""
    records: list[M] = []
    for number, obj in iter_jsonl(path):
        try:
            records.append(model.model_validate(obj))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise DetoxError(
                f"{path}:{number}: invalid {model.__name__} ({where}: {first['msg']})",
                "fix or remove that line",
            ) from exc
    return records


def _repair_tail(path: Path) -> None:
    """Cut a trailing partial line (a record a killed writer did not finish)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        handle.truncate(cut)


class JsonlWriter:
    """Append-only, resumable JSONL writer.

    ``key`` maps a record (as a dict) to its identity; ``done`` is the set of keys already in the
    file when it was opened, so callers can skip finished work. ``fresh=True`` starts over.
    """

    def __init__(
        self,
        path: str | Path,
        key: Callable[[dict[str, Any]], Any] | None = None,
        fresh: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key
        self.done: set[Any] = set()
        if fresh:
            self.path.unlink(missing_ok=True)
        _repair_tail(self.path)
        if key is not None and self.path.exists():
            for _, obj in iter_jsonl(self.path):
                self.done.add(key(obj))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        """Append one record as a single complete line."""
        obj = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
        os.write(self._fd, line)
        if self._key is not None:
            self.done.add(self._key(obj))

    def close(self) -> None:
        """Flush to disk and close."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_json_model(path: str | Path, model: type[M], what: str) -> M:
    """Read one JSON document into ``model``; a missing, unreadable or invalid file is one
    DetoxError naming the file (``what`` says what the file should be)."""
    path = Path(path)
    text = read_text(path)
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise DetoxError(
            f"{path} is not a valid {what} ({where}: {first['msg']})",
            f"point to a valid {what}",
        ) from None
