"""Progress display: a rich bar on a terminal, throttled plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from detox_core import progress
from detox_core.progress import LineProgress, progress_bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_are_throttled_and_end_with_the_total() -> None:
    clock, out = FakeClock(), io.StringIO()
    with LineProgress(stream=out, interval=5.0, clock=clock) as bar:
        task = bar.add_task("generating (vanilla)", total=200)
        clock.now += 1
        bar.advance(task, 40)
        assert out.getvalue() == ""
        clock.now += 5
        bar.advance(task, 40)
        clock.now += 1
        bar.update(task, advance=40)
        clock.now += 1
        bar.advance(task, 80)
    assert out.getvalue().splitlines() == [
        "generating (vanilla): 80/200 (0:00:06)",
        "generating (vanilla): 200/200 (0:00:08)",
    ]


def test_unfinished_task_prints_its_last_state_once_at_the_end() -> None:
    clock, out = FakeClock(), io.StringIO()
    with LineProgress(stream=out, interval=5.0, clock=clock) as bar:
        task = bar.add_task("scoring", total=10)
        clock.now += 2
        bar.advance(task, 3)
    assert out.getvalue() == "scoring: 3/10 (0:00:02)\n"


def test_hidden_or_idle_tasks_print_nothing_not_even_blank_lines() -> None:
    out = io.StringIO()
    with LineProgress(stream=out) as bar:
        hidden = bar.add_task("hidden", total=5, visible=False)
        bar.advance(hidden, 5)
        bar.add_task("resumed", total=5, completed=5)
    with LineProgress(stream=out):
        pass
    assert out.getvalue() == ""


def test_progress_bar_off_a_terminal_writes_lines_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with progress_bar() as bar:
        assert isinstance(bar, LineProgress)
        hidden = bar.add_task("hidden", total=2, visible=False)
        bar.advance(hidden, 2)
        task = bar.add_task("training", total=4)
        bar.update(task, completed=4, description="training (loss 0.5)")
    err = capsys.readouterr().err
    assert err.splitlines() == ["training (loss 0.5): 4/4 (0:00:00)"]


def test_progress_bar_on_a_terminal_is_the_rich_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setattr(progress, "stderr_console", terminal)
    bar = progress_bar()
    assert not isinstance(bar, LineProgress)
    assert bar.console is terminal
