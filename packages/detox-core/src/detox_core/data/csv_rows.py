"""CSV rows with their line numbers; a malformed row is a DetoxError naming file and line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from detox_core.errors import DetoxError
from detox_core.io import read_text


def iter_csv_rows(
    path: str | Path, required: Sequence[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` per record (``line`` is where the record starts).

    The header must name every ``required`` column; a row with too few or too many fields, or
    broken quoting, is a DetoxError.
    """
    path = Path(path)
    with io.StringIO(read_text(path), newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise DetoxError(f"{path} is empty", "expected a CSV header line") from None
        except csv.Error as exc:
            raise DetoxError(f"{path}:1: malformed CSV header ({exc})", "fix the header") from exc
        missing = [name for name in required if name not in header]
        if missing:
            raise DetoxError(
                f"{path}:1: missing column(s) {', '.join(missing)}",
                f"expected a header with {', '.join(required)}",
            )
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DetoxError(
                    f"{path}:{start}: malformed CSV row ({exc})", "fix or remove that row"
                ) from exc
            if fields:
                if len(fields) != len(header):
                    raise DetoxError(
                        f"{path}:{start}: expected {len(header)} fields, found {len(fields)}",
                        "fix or remove that row (quote fields that contain commas)",
                    )
                yield start, dict(zip(header, fields, strict=True))
            start = reader.line_num + 1
