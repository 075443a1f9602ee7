"""The Typer app ``detox``: one module per command group, errors formatted in ``errors``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from detox_cli.commands import cmd, compare, ddsc, eval, generate, score_group

app = typer.Typer(
    name="detox",
    help="Make language models less toxic: CMD fine-tuning, DDSC decoding and their evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global_options(
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="CPU threads for torch (default: OMP_NUM_THREADS, else 1 on machines with two "
            "cores or fewer, else one per physical core).",
        ),
    ] = None,
) -> None:
    """Settings for every command, applied before it runs."""
    from detox_core.runtime import configure_threads

    configure_threads(threads)


app.command("generate")(generate.generate)
app.command("compare")(compare.compare)
app.add_typer(score_group.app, name="score")
app.add_typer(cmd.app, name="cmd")
app.add_typer(ddsc.app, name="ddsc")
app.add_typer(eval.app, name="eval")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``detox`` script."""
    from detox_cli.errors import run_guarded

    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    run_guarded(lambda: command.main(args=args, prog_name="detox", standalone_mode=False))


if __name__ == "__main__":
    main()
