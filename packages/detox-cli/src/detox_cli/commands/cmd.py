"""``detox cmd``: CMD data synthesis, training and chain inference."""

from __future__ import annotations

import typer

app = typer.Typer(help="CMD: context-aware model self-detoxification.", no_args_is_help=True)
