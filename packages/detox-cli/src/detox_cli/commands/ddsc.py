"""``detox ddsc``: DDSC layer-contrast decoding, the toxic-layer locator, a benchmark and the
SafeEdit classification task."""

from __future__ import annotations

import typer

from detox_cli.commands import ddsc_classify, ddsc_generate, ddsc_tools

app = typer.Typer(
    help="DDSC: detoxification with dynamic safety constraints.", no_args_is_help=True
)
app.command("generate")(ddsc_generate.generate)
app.command("locate")(ddsc_tools.locate)
app.command("bench")(ddsc_tools.bench)
app.command("classify")(ddsc_classify.classify_command)
