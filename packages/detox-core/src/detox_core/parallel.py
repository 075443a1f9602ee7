"""Data-parallel runs on Accelerate's launcher: one place that knows the process's rank.

``accelerate launch --num_processes N -m detox_cli.app ...`` (on GPUs; on a CPU-only machine
``--multi_gpu`` selects the same torchrun launcher) or ``torchrun`` starts N copies of a command
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment. (accelerate 1.x's
``--cpu`` launcher starts a single process unless it is given an MPI hostfile; that process then
runs the whole evaluation itself.) Each process
takes shard ``RANK`` of ``WORLD_SIZE`` (whole chunks of work, seeded independently of the rank),
writes it to its own ``shard-I-of-N`` folder, and rank 0 waits until the others' folders say
they are complete before it merges them. No collective is used: a share can take hours, longer than a
process group's timeout, and a crashed process takes the launcher and its peers down with it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detox_core.models import ModelOptions

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in a data-parallel run (rank 0 of 1 when run alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    def model_options(self, options: ModelOptions) -> ModelOptions:
        """Place each process's model on its own GPU when the device is ``auto``."""
        if self.size == 1 or options.device != "auto":
            return options
        import torch

        if not torch.cuda.is_available():
            return options.model_copy(update={"device": "cpu"})
        device = f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return options.model_copy(update={"device": device})

    def wait_for(
        self,
        directories: Sequence[Path],
        is_done: Callable[[Path], bool],
        poll: float = POLL_SECONDS,
    ) -> None:
        """Block until ``is_done`` holds for every shard folder (rank 0, before merging)."""
        waiting = list(directories)
        told = False
        while waiting:
            waiting = [d for d in waiting if not is_done(d)]
            if waiting:
                if not told:
                    names = ", ".join(d.name for d in waiting)
                    sys.stderr.write(f"rank 0: waiting for {names} to finish\n")
                    told = True
                time.sleep(poll)

    def shard_dirs(self, out: Path) -> list[Path]:
        """Every process's shard folder inside ``out``: ``shard-I-of-N``."""
        return [out / shard_dirname(i, self.size) for i in range(self.size)]


def shard_dirname(index: int, count: int) -> str:
    """The folder one process of a data-parallel run writes to."""
    return f"shard-{index}-of-{count}"


# Rank and size as torchrun (``accelerate launch --multi_gpu``, also on a CPU) and MPI launchers
# (``accelerate launch --cpu --mpirun_hostfile ...``) export them, first match wins.
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_VARS = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK")


def _first_int(names: Sequence[str]) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def current_group() -> ProcessGroup:
    """The process group that launched this process, from the launcher's environment."""
    size = _first_int(SIZE_VARS) or 1
    rank = _first_int(RANK_VARS) or 0
    local = _first_int(LOCAL_RANK_VARS)
    if not 0 <= rank < size:
        return ProcessGroup()
    return ProcessGroup(rank=rank, size=size, local_rank=rank if local is None else local)
