"""``detox score``: score a generations JSONL or a text file (implemented in a later step)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Score texts for toxicity.", no_args_is_help=True)
