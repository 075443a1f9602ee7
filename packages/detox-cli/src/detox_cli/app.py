"""The Typer app ``detox``: one module per command group, errors formatted in ``errors``.

Building the command tree imports no torch (nor transformers, ...): the command modules import
the library inside the commands, so ``detox --help`` and shell completion answer at once.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from detox_cli.commands import cmd, compare, ddsc, eval, generate, score_group

_chosen_threads: dict[str, int] = {}  # "threads": the count the global options chose

app = typer.Typer(
    name="detox",
    help="Make language models less toxic: CMD fine-tuning, DDSC decoding and their evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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
    from detox_core.runtime import choose_threads, configure_threads

    choice = choose_threads(threads)  # a bad value fails here, before the command's options
    _chosen_threads["threads"] = choice.threads
    if "torch" in sys.modules:  # already imported (in-process callers): apply at once
        configure_threads(choice.threads)


app.command("generate")(generate.generate)
app.command("compare")(compare.compare)
app.add_typer(score_group.app, name="score")
app.add_typer(cmd.app, name="cmd")
app.add_typer(ddsc.app, name="ddsc")
app.add_typer(eval.app, name="eval")


def _threads_first(command: TyperCommand | TyperGroup) -> None:
    """Wrap every leaf command so that torch gets its threads just before the command runs:
    never for ``--help`` or completion, which then import no torch."""
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            assert isinstance(sub, TyperCommand | TyperGroup)
            _threads_first(sub)
        return
    callback = command.callback
    if callback is None:
        return

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        threads = _chosen_threads.get("threads")
        if threads is not None:
            from detox_core.runtime import configure_threads

            configure_threads(threads)
        return callback(*args, **kwargs)

    command.callback = run


def build_command() -> TyperCommand | TyperGroup:
    """The click command tree of ``app``, with the thread setting applied before each command."""
    command = typer.main.get_command(app)
    assert isinstance(command, TyperCommand | TyperGroup)
    _threads_first(command)
    return command


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``detox`` script (and ``python -m detox_cli.app``)."""
    from detox_cli.errors import run_guarded

    command = build_command()
    args = sys.argv[1:] if argv is None else argv
    run_guarded(lambda: command.main(args=args, prog_name="detox", standalone_mode=False))


if __name__ == "__main__":
    main()
