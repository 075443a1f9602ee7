"""``detox ddsc``: DDSC layer-contrast decoding."""

from __future__ import annotations

import typer

app = typer.Typer(help="DDSC: detoxification with dynamic safety constraints.", no_args_is_help=True)
