"""Progress display for every loop over data (written to stderr).

On a terminal this is a rich progress bar. Elsewhere (a log file, a pipe, CI) rich would print the
bar once at the end, or a blank line when no task is visible, so the display becomes a
``LineProgress`` instead: one plain line such as ``generating (vanilla): 40/200 (0:00:12)`` at
most every ``LINE_INTERVAL_S`` seconds while a task runs and one when it ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr_console = Console(stderr=True)
LINE_INTERVAL_S = 10.0


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


class LineProgress(Progress):
    """A ``Progress`` that draws nothing live and writes one plain line per (throttled) update.

    Tasks, ``add_task``, ``advance`` and ``update`` behave as in rich; hidden tasks print nothing.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(disable=True, get_time=clock)
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._last_time: dict[TaskID, float] = {}
        self._last_done: dict[TaskID, float] = {}

    def _write(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def _line(self, task_id: TaskID) -> str:
        task = self._tasks[task_id]
        count = _count(task.completed)
        if task.total is not None:
            count = f"{count}/{_count(task.total)}"
        elapsed = timedelta(seconds=int(task.elapsed or 0))
        return f"{task.description}: {count} ({elapsed})"

    def _report(self, task_id: TaskID, final: bool = False) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or not task.visible:
                return
            now = self._clock()
            changed = task.completed != self._last_done.get(task_id, 0)
            due = now - self._last_time.get(task_id, now) >= self._interval
            if not changed or not (final or task.finished or due):
                return
            self._last_time[task_id] = now
            self._last_done[task_id] = task.completed
            line = self._line(task_id)
        self._write(line)

    def add_task(
        self,
        description: str,
        start: bool = True,
        total: float | None = 100.0,
        completed: int = 0,
        visible: bool = True,
        **fields: Any,
    ) -> TaskID:
        """Add a task; its lines start after its first progress."""
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._last_time[task_id] = self._clock()
        self._last_done[task_id] = completed
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Advance a task and print its line if one is due."""
        super().advance(task_id, advance)
        self._report(task_id)

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        visible: bool | None = None,
        refresh: bool = False,
        **fields: Any,
    ) -> None:
        """Update a task and print its line if one is due."""
        super().update(
            task_id,
            total=total,
            completed=completed,
            advance=advance,
            description=description,
            visible=visible,
            refresh=refresh,
            **fields,
        )
        self._report(task_id)

    def stop(self) -> None:
        """Print the last state of every task that moved since its last line."""
        for task_id in list(self._tasks):
            self._report(task_id, final=True)


def progress_bar() -> Progress:
    """A progress display with count, elapsed and remaining time (plain lines off a terminal)."""
    if not stderr_console.is_terminal and not stderr_console.is_jupyter:
        return LineProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        transient=False,
    )
