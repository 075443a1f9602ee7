"""Errors are formatted in one place: one line on stderr, exit code 2 for bad input.

``DETOX_DEBUG=1`` re-raises so the full traceback is shown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import click
from pydantic import ValidationError

from detox_core.errors import DetoxError

USAGE_EXIT = 2


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
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.UsageError as exc:
        if debug_enabled():
            raise
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(f"{exc.format_message()}{hint}", USAGE_EXIT)
    except click.ClickException as exc:
        if debug_enabled():
            raise
        _fail(exc.format_message(), USAGE_EXIT)
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
