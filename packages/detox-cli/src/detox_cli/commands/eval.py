"""``detox eval``: evaluation commands (metrics, rtp, safeedit)."""

from __future__ import annotations

import typer

from detox_cli.commands import eval_metrics, eval_rtp, eval_safeedit

app = typer.Typer(help="Evaluate generations and methods.", no_args_is_help=True)
app.command("metrics")(eval_metrics.metrics)
app.command("rtp")(eval_rtp.rtp)
app.command("safeedit")(eval_safeedit.safeedit)
