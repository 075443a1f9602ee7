"""One writer at a time for each run folder or resumable output file.

``output_lock(path)`` takes ``path/.detox.lock`` (a folder) or ``.NAME.lock`` beside a file,
created atomically (``O_CREAT | O_EXCL``) with the holder's pid, host and start time, and removes
it on exit, also when the job fails. A second process is refused at once with one line naming
the folder and the holder. A lock left by a process that died (same host, pid gone) is taken over
safely: it is first renamed away, an atomic step only one contender wins. The lock is re-entrant
within a process, so library functions and the commands around them can both take it. Processes
of one data-parallel run write their own ``shard-I-of-N`` folders, each with its own lock.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from pydantic import BaseModel, ValidationError

from detox_core.errors import DetoxError

LOCK_NAME = ".detox.lock"
UNREADABLE_GRACE_S = 10.0  # a lock still being written is unreadable for a moment

P = ParamSpec("P")
R = TypeVar("R")

_held: dict[Path, int] = {}  # lock files this process holds, with their nesting depth


class LockInfo(BaseModel):
    """What a lock file holds."""

    pid: int
    host: str
    started: str


def lock_path(target: Path, folder: bool) -> Path:
    """The lock file of a folder (inside it) or of a file (beside it)."""
    return target / LOCK_NAME if folder else target.with_name(f".{target.name}.lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _read(lock: Path) -> LockInfo | None:
    try:
        return LockInfo.model_validate_json(lock.read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError):
        return None


def _try_create(lock: Path, info: LockInfo) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(info.model_dump()))
    return True


def _is_stale(lock: Path, holder: LockInfo | None, host: str) -> bool:
    if holder is None:  # unreadable: stale once it is older than a write takes
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return True
        return age > UNREADABLE_GRACE_S
    return holder.host == host and not _pid_alive(holder.pid)


def _take_over(lock: Path) -> None:
    """Move a stale lock out of the way (only one contender's rename succeeds)."""
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    aside.unlink(missing_ok=True)


def acquire(target: Path, folder: bool = True) -> Path:
    """Take the lock of ``target`` for this process (see the module doc); returns its path."""
    lock = lock_path(target, folder)
    if lock in _held:
        _held[lock] += 1
        return lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    info = LockInfo(
        pid=os.getpid(), host=host, started=datetime.now(UTC).isoformat(timespec="seconds")
    )
    for _ in range(5):
        if _try_create(lock, info):
            _held[lock] = 1
            return lock
        holder = _read(lock)
        if holder is not None and holder.pid == info.pid and holder.host == host:
            _held[lock] = 1  # ours (left by this very process)
            return lock
        if _is_stale(lock, holder, host):
            _take_over(lock)
            continue
        who = "another process" if holder is None else f"pid {holder.pid} on {holder.host}"
        since = "" if holder is None else f" since {holder.started}"
        raise DetoxError(
            f"{target} is being written by {who}{since}",
            f"wait for it to finish or use another output; if that process is gone, delete {lock}",
        )
    raise DetoxError(f"could not lock {target}", f"retry, or delete {lock} if no job runs")


def release(lock: Path) -> None:
    """Release one level of this process's hold on ``lock``; the file goes at the last."""
    depth = _held.get(lock, 0) - 1
    if depth > 0:
        _held[lock] = depth
        return
    _held.pop(lock, None)
    holder = _read(lock)
    if holder is not None and holder.pid == os.getpid():
        lock.unlink(missing_ok=True)


@contextmanager
def output_lock(target: str | Path, folder: bool = True) -> Iterator[Path]:
    """Hold the one-writer lock of a run folder (or, ``folder=False``, of an output file) for the
    ``with`` block."""
    lock = acquire(Path(target), folder)
    try:
        yield lock
    finally:
        release(lock)


def locks_folder(param: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so that it holds the lock of the folder passed as ``param``."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            target = signature.bind(*args, **kwargs).arguments[param]
            with output_lock(Path(target)):
                return func(*args, **kwargs)

        return locked

    return decorate
