"""``detox eval``: evaluation commands (metrics, rtp, safeedit)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Evaluate generations and methods.", no_args_is_help=True)
