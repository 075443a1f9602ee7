"""``detox score``: ``detox score FILE`` scores texts; ``agree`` and ``train`` are subcommands."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from detox_cli.commands import (
    score,
    score_agree,
    score_agree_pairs,
    score_train,
    score_train_safety,
)

DEFAULT_SUBCOMMAND = "texts"


class DefaultCommandGroup(TyperGroup):
    """A group whose arguments go to ``texts`` unless they start with a subcommand's name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Route ``detox score [OPTIONS] FILE`` to the default subcommand."""
        help_only = bool(args) and args[0] in ctx.help_option_names
        if args and not help_only and args[0] not in self.commands:
            args = [DEFAULT_SUBCOMMAND, *args]
        parsed: list[str] = super().parse_args(ctx, args)
        return parsed


app = typer.Typer(
    cls=DefaultCommandGroup,
    help=(
        "Score texts for toxicity: `detox score FILE [--scorer SPEC]`; `detox score agree` "
        "compares a scorer with Perspective, `detox score agree-pairs` a judge with SafeEdit's "
        "labels; `detox score train` trains tox-minilm, `detox score train-safety` safety-minilm."
    ),
    no_args_is_help=True,
)
app.command(DEFAULT_SUBCOMMAND, help="Score a generations JSONL or a text file (the default).")(
    score.score
)
app.command("agree")(score_agree.agree)
app.command("agree-pairs")(score_agree_pairs.agree_pairs)
app.command("train")(score_train.train)
app.command("train-safety")(score_train_safety.train_safety)
