"""``detox cmd``: CMD data synthesis, training and chain inference."""

from __future__ import annotations

import typer

from detox_cli.commands import cmd_generate, cmd_recipe, cmd_spans, cmd_synthesize, cmd_train

app = typer.Typer(help="CMD: context-aware model self-detoxification.", no_args_is_help=True)
app.command("recipe")(cmd_recipe.recipe)
app.command("synthesize")(cmd_synthesize.synthesize)
app.command("detect")(cmd_synthesize.detect)
app.command("rephrase")(cmd_synthesize.rephrase)
app.command("continue")(cmd_synthesize.continue_)
app.command("assemble")(cmd_synthesize.assemble)
app.command("merge")(cmd_synthesize.merge)
app.command("train")(cmd_train.train)
app.command("generate")(cmd_generate.generate)
app.command("export")(cmd_generate.export)
spans = typer.Typer(help="The Segment-CNN toxic-span detector (CMD step 1).", no_args_is_help=True)
spans.command("train")(cmd_spans.train)
spans.command("eval")(cmd_spans.evaluate)
spans.command("predict")(cmd_spans.predict)
app.add_typer(spans, name="spans")
