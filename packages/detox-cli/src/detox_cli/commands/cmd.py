"""``detox cmd``: CMD data synthesis, training and chain inference."""

from __future__ import annotations

import typer

from detox_cli.commands import cmd_spans, cmd_synthesize, cmd_train

app = typer.Typer(help="CMD: context-aware model self-detoxification.", no_args_is_help=True)
cmd_synthesize.register(app)
cmd_train.register(app)
app.add_typer(cmd_spans.app, name="spans")
