"""One writer per run folder or output file: a second process is refused, a stale lock from a
dead process is taken over, a crash releases it; re-entrant within a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from detox_core.errors import DetoxError
from detox_core.locking import LOCK_NAME, locks_folder, output_lock

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from detox_core.locking import output_lock
    with output_lock(Path(sys.argv[1]), folder=sys.argv[2] == "folder"):
        Path(sys.argv[3]).write_text("locked")
        if sys.argv[4] == "crash":
            raise RuntimeError("the job failed")
        time.sleep(60)
    """
)


def start_holder(
    target: Path, ready: Path, mode: str, folder: bool = True
) -> subprocess.Popen[str]:
    kind = "folder" if folder else "file"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target), kind, str(ready), mode],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None or mode == "crash", proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.05)
    return proc


def test_a_second_process_is_refused_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run, tmp_path / "ready", "hold")
    try:
        with pytest.raises(DetoxError) as exc, output_lock(run):
            pass
        message = str(exc.value)
        assert str(run) in message and f"pid {holder.pid}" in message
        assert "\n" not in message
        info = json.loads((run / LOCK_NAME).read_text())
        assert info["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run, tmp_path / "ready", "hold")
    os.kill(holder.pid, signal.SIGKILL)  # no chance to clean up
    holder.wait()
    assert (run / LOCK_NAME).exists()
    with output_lock(run) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()


def test_a_crash_releases_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "gens.jsonl"
    holder = start_holder(out, tmp_path / "ready", "crash", folder=False)
    holder.wait(timeout=60)
    assert holder.returncode != 0
    assert not (tmp_path / ".gens.jsonl.lock").exists()
    with output_lock(out, folder=False):
        assert (tmp_path / ".gens.jsonl.lock").exists()


def test_reentrant_within_a_process_and_released_at_the_last_exit(tmp_path: Path) -> None:
    calls: list[Path] = []

    @locks_folder("where")
    def job(where: Path) -> None:
        calls.append(where)
        assert (where / LOCK_NAME).exists()

    with output_lock(tmp_path):
        job(tmp_path)
        assert (tmp_path / LOCK_NAME).exists()
    assert calls == [tmp_path] and not (tmp_path / LOCK_NAME).exists()


def test_an_exception_inside_releases_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError), output_lock(tmp_path):
        raise ValueError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path: Path) -> None:
    info = {"pid": 1, "host": "elsewhere.example", "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(info))
    with pytest.raises(DetoxError, match=r"pid 1 on elsewhere\.example"), output_lock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).exists()


def test_cli_second_writer_is_one_line_exit_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = start_holder(run, tmp_path / "ready", "hold")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "detox_cli.app", "eval", "rtp", "--prompts",
             str(Path(__file__).parent / "fixtures" / "rtp_small.jsonl"), "--out", str(run),
             "--methods", "vanilla", "--scorer", "profanity"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 2
        err = result.stderr.strip().splitlines()
        assert len(err) == 1 and "is being written by" in err[0] and str(run) in err[0]
        assert not (run / "generations.jsonl").exists()  # the first writer's folder is intact
    finally:
        holder.kill()
        holder.wait()
