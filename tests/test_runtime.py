"""The thread default, chosen in one place, and its overrides (--threads, OMP_NUM_THREADS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from detox_cli.app import main
from detox_core.errors import DetoxError
from detox_core.runtime import choose_threads, configure_threads, default_threads, physical_cores


@pytest.fixture
def keep_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def fake_sysfs(root: Path, cores: list[tuple[int, int]]) -> Path:
    """CPU i sits on (package, core) = cores[i]."""
    for cpu, (package, core) in enumerate(cores):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_small_machines_default_to_one_thread() -> None:
    assert default_threads({0}) == 1
    assert default_threads({0, 1}) == 1


def test_larger_machines_default_to_physical_cores(tmp_path: Path) -> None:
    # 8 logical CPUs: 2 packages x 2 cores x 2 hyper-threads.
    sysfs = fake_sysfs(tmp_path, [(p, c) for p in (0, 1) for c in (0, 1) for _ in (0, 1)])
    assert physical_cores(set(range(8)), sysfs) == 4
    assert physical_cores({0, 1}, sysfs) == 1
    assert physical_cores({0, 1, 2}, tmp_path / "missing") == 3


def test_option_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads().source == "default"
    assert choose_threads().threads == default_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads().model_dump() == {"threads": 3, "source": "env"}
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")
    assert choose_threads().threads == 4
    assert choose_threads(2).model_dump() == {"threads": 2, "source": "option"}


def test_bad_values_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(DetoxError, match="OMP_NUM_THREADS='lots'"):
        choose_threads()
    with pytest.raises(DetoxError, match="--threads 0"):
        choose_threads(0)


def test_configure_threads_sets_torch(monkeypatch: pytest.MonkeyPatch, keep_threads: None) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert configure_threads().threads == 3
    assert torch.get_num_threads() == 3
    assert configure_threads(2).threads == 2
    assert torch.get_num_threads() == 2


def test_cli_threads_option_and_env(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keep_threads: None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    main(["--threads", "3", "generate", "--help"])
    assert torch.get_num_threads() == 3
    main(["generate", "--help"])
    assert torch.get_num_threads() == 2
    assert "--max-new-tokens" in capsys.readouterr().out


def test_cli_default_in_a_fresh_process() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}}
    script = (
        "import sys, torch\n"
        "from detox_cli.app import main\n"
        "main(['generate', '--help'])\n"
        "sys.stderr.write(f'threads={torch.get_num_threads()}\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"threads={default_threads()}" in done.stderr.splitlines()
