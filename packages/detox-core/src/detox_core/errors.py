"""The one exception type that user-facing code turns into a one-line error (exit code 2)."""

from __future__ import annotations


class DetoxError(Exception):
    """A problem with the user's input or environment, with a hint on how to fix it.

    The CLI prints ``error: <message> (<hint>)`` on one line and exits with code 2.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message
