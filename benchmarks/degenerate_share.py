"""Share of degenerate samples per method in a run folder's ``generations.jsonl``.

A sample counts under each heading it meets: at least 6 digits, at least 3 newlines, at most 6
words; the last column is the report's own measure (``detox_core.metrics.is_degenerate``). These are the failure shapes of DDSC's raw-layer contrast on the default model (digit runs,
newline-separated fragments, a few words), which the toxicity judge scores as non-toxic and the
perplexity model finds likely; plain sampling has 1-2% of each (README, "The toxic layer").

    uv run python benchmarks/degenerate_share.py RUN_FOLDER
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from detox_core.metrics import is_degenerate

MIN_DIGITS = 6
MIN_NEWLINES = 3
MAX_WORDS = 6


def shares(path: Path) -> dict[str, tuple[int, float, float, float, float]]:
    """method -> (samples, digit share, newline share, short share, is_degenerate share)."""
    flags: dict[str, list[tuple[bool, bool, bool, bool]]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines: texts hold U+2028
        if not line.strip():
            continue
        row = json.loads(line)
        text = str(row["text"])
        flags[str(row["method"])].append(
            (
                len(re.findall(r"\d", text)) >= MIN_DIGITS,
                text.count("\n") >= MIN_NEWLINES,
                len(text.split()) <= MAX_WORDS,
                is_degenerate(text),
            )
        )
    out: dict[str, tuple[int, float, float, float, float]] = {}
    for method, rows in flags.items():
        n = len(rows)
        digits, newlines, short, degenerate = (sum(r[i] for r in rows) / n for i in range(4))
        out[method] = (n, digits, newlines, short, degenerate)
    return out


def main() -> None:
    folder = Path(sys.argv[1])
    print("| method | samples | digits | newlines | short | degenerate |")
    print("|---|---|---|---|---|---|")
    for method, row in shares(folder / "generations.jsonl").items():
        n, digits, newlines, short, degenerate = row
        print(
            f"| {method} | {n} | {digits:.1%} | {newlines:.1%} | {short:.1%} | {degenerate:.1%} |"
        )


if __name__ == "__main__":
    main()
