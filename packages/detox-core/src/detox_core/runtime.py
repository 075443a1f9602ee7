"""Process-wide runtime settings chosen in one place: the number of CPU threads torch uses.

torch defaults to one thread per physical core. On a machine with two cores or fewer that default
loses badly as soon as anything else runs (tiny-model decoding measured about 6x slower with 2
threads than with 1 on a loaded 2-core VM), so the default there is 1 thread. ``--threads`` and
``OMP_NUM_THREADS`` override it (in that order).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detox_core.errors import DetoxError

THREADS_ENV = "OMP_NUM_THREADS"
SMALL_MACHINE_CPUS = 2  # at or below this many usable CPUs the default is one thread
_CPU_SYSFS = Path("/sys/devices/system/cpu")


class ThreadChoice(BaseModel):
    """How many threads torch gets and where that number came from."""

    model_config = ConfigDict(frozen=True)

    threads: int = Field(ge=1)
    source: Literal["option", "env", "default"]


def usable_cpus() -> set[int]:
    """The CPU ids this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int], sysfs: Path = _CPU_SYSFS) -> int:
    """Distinct physical cores among ``cpus`` (from Linux sysfs; logical CPUs if unreadable)."""
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def default_threads(cpus: set[int] | None = None) -> int:
    """One thread on machines with two usable CPUs or fewer, else one per physical core."""
    cpus = usable_cpus() if cpus is None else cpus
    if len(cpus) <= SMALL_MACHINE_CPUS:
        return 1
    return physical_cores(cpus)


def _env_threads() -> int | None:
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    first = value.split(",")[0].strip()  # OpenMP allows a per-level list such as "4,2"
    if not first.isdigit() or int(first) < 1:
        raise DetoxError(
            f"{THREADS_ENV}={value!r} is not a positive number of threads",
            f"set {THREADS_ENV} to a number such as 1, or unset it",
        )
    return int(first)


def choose_threads(threads: int | None = None) -> ThreadChoice:
    """The thread count to use: ``threads`` (the option), else ``OMP_NUM_THREADS``, else the
    machine default."""
    if threads is not None:
        if threads < 1:
            raise DetoxError(f"--threads {threads} is not a positive number", "use 1 or more")
        return ThreadChoice(threads=threads, source="option")
    env = _env_threads()
    if env is not None:
        return ThreadChoice(threads=env, source="env")
    return ThreadChoice(threads=default_threads(), source="default")


def configure_threads(threads: int | None = None) -> ThreadChoice:
    """Choose the thread count (see ``choose_threads``) and apply it to torch.

    torch is imported here, not at module level, so importing this module stays cheap.
    """
    choice = choose_threads(threads)
    import torch

    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice
