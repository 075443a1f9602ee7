"""``detox score``: score a generations JSONL or a text file (one text a line) for toxicity."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from detox_core.data import read_generations
from detox_core.errors import DetoxError
from detox_core.io import JsonlWriter, iter_text_lines
from detox_core.locking import acquire, release
from detox_core.records import Generation, Score, generation_key
from detox_core.scoring import DEFAULT_SCORER, SCORER_SPECS, ScoredText, load_scorer
from detox_core.scoring.jobs import score_in_batches

FileArg = Annotated[
    Path, typer.Argument(help="Generations JSONL (.jsonl) or a text file with one text a line.")
]
ScorerOpt = Annotated[
    str, typer.Option("--scorer", "-s", help=f"Scorer spec: {escape(SCORER_SPECS)}.")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write scored records to this JSONL (resumes); default: stdout."),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per scorer call.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Device of classifier scorers: auto, cpu, cuda, cuda:N.")
]

GENERATION_SUFFIXES = {".jsonl", ".json"}


def read_text_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines of a text file with their 1-based line numbers (a bad encoding or NUL
    byte is a one-line error naming the line)."""
    lines = [(n, line) for n, line in iter_text_lines(path) if line.strip()]
    if not lines:
        raise DetoxError(f"{path} holds no text to score", "one text a line")
    return lines


def _line_key(obj: dict[str, Any]) -> int:
    return int(obj["line"])


def score(
    file: FileArg,
    scorer: ScorerOpt = DEFAULT_SCORER,
    out: OutOpt = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = "auto",
) -> None:
    """Score texts for toxicity; generations get their ``toxicity`` field filled."""
    if out is not None and out.resolve() == file.resolve():
        raise DetoxError("--out is the input file", "write the scores to a new file")
    is_generations = file.suffix in GENERATION_SUFFIXES
    generations: list[Generation] = []
    lines: list[tuple[int, str]] = []
    if is_generations:
        generations = read_generations(file)
    else:
        lines = read_text_lines(file)
    scoring = load_scorer(scorer, device=device)
    writer = None
    lock = None
    if out is not None:
        lock = acquire(out, folder=False)  # one writer per output file
        try:
            writer = JsonlWriter(out, key=generation_key if is_generations else _line_key)
        except BaseException:
            release(lock)
            raise
    done = writer.done if writer is not None else set()
    todo_gens = [g for g in generations if g.key not in done]
    todo_lines = [(n, t) for n, t in lines if n not in done]
    texts = [g.text for g in todo_gens] if is_generations else [t for _, t in todo_lines]

    def emit(start: int, scores: list[Score]) -> None:
        for offset, value in enumerate(scores):
            record: Generation | ScoredText
            if is_generations:
                record = todo_gens[start + offset].model_copy(update={"toxicity": value})
            else:
                number, text = todo_lines[start + offset]
                record = ScoredText(line=number, text=text, toxicity=value)
            if writer is not None:
                writer.write(record)
            else:
                sys.stdout.write(
                    json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n"
                )
        sys.stdout.flush()

    try:
        scores = score_in_batches(scoring, texts, batch_size=batch_size, on_batch=emit)
    finally:
        if writer is not None:
            writer.close()
        if lock is not None:
            release(lock)
    missing = sum(s.value is None for s in scores)
    total = len(generations) if is_generations else len(lines)
    summary = f"scored {len(scores)} texts with {scoring.name}@{scoring.version}: {missing} missing"
    if total > len(scores):
        summary += f", {total - len(scores)} already in {out}"
    if out is not None:
        summary += f"; output in {out}"
    sys.stderr.write(summary + "\n")
