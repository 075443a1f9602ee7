"""Errors are formatted in one place: one line on stderr, exit code 2 for bad input.

``DETOX_DEBUG=1`` re-raises so the full traceback is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click
import typer
from pydantic import ValidationError

from detox_core.errors import DetoxError

USAGE_EXIT = 2

try:  # typer >= 0.24 vendors click; its exceptions are not click's
    from typer._click import exceptions as _typer_click

    USAGE_ERRORS: tuple[type[Exception], ...] = (click.UsageError, _typer_click.UsageError)
    CLICK_ERRORS: tuple[type[Exception], ...] = (
        click.ClickException,
        _typer_click.ClickException,
    )
except ImportError:  # pragma: no cover - typer on plain click
    USAGE_ERRORS = (click.UsageError,)
    CLICK_ERRORS = (click.ClickException,)
EXITS: tuple[type[Exception], ...] = (click.exceptions.Exit, typer.Exit)
ABORTS: tuple[type[Exception], ...] = (click.exceptions.Abort, typer.Abort)


def _usage_message(exc: Exception) -> str:
    """A usage error's one line, with a pointer to the command's help."""
    message = str(exc.format_message()) if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{message}{hint}"


def debug_enabled() -> bool:
    """True when ``DETOX_DEBUG`` asks for tracebacks."""
    return os.environ.get("DETOX_DEBUG", "") not in {"", "0", "false"}


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def run_guarded(func: Callable[[], object]) -> None:
    """Run the CLI, turning known errors into one line and an exit code."""
    try:
        func()
    except EXITS as exc:
        raise SystemExit(getattr(exc, "exit_code", 0)) from None
    except ABORTS:
        _fail("aborted", 130)
    except USAGE_ERRORS as exc:
        if debug_enabled():
            raise
        _fail(_usage_message(exc), USAGE_EXIT)
    except CLICK_ERRORS as exc:
        if debug_enabled():
            raise
        _fail(_usage_message(exc).split(" (see `")[0], USAGE_EXIT)
    except DetoxError as exc:
        if debug_enabled():
            raise
        _fail(str(exc), USAGE_EXIT)
    except ValidationError as exc:
        if debug_enabled():
            raise
        first = exc.errors()[0]
        names = [str(p) for p in first["loc"] if not isinstance(p, int)]
        option = f"--{names[-1].replace('_', '-')}" if names else "setting"
        _fail(f"invalid {option}: {first['msg']} (fix the option)", USAGE_EXIT)
    except KeyboardInterrupt:
        _fail("interrupted; rerun the same command to resume", 130)
    except Exception as exc:
        if debug_enabled():
            raise
        _fail(f"{type(exc).__name__}: {exc} (rerun with DETOX_DEBUG=1 for the traceback)", 1)
