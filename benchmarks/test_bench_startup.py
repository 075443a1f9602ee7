"""CLI start-up, end to end as processes: ``detox --help``, ``detox eval rtp --help`` and a
one-token ``detox generate``, next to their floors: ``python -c "import transformers"`` and a plain
script that imports torch and transformers and loads the default model.

Run with ``uv run pytest benchmarks/test_bench_startup.py --benchmark-enable -s``; the figures and
their ratios are printed and stored in ``extra_info`` (targets: ``detox --help`` under 1 s; the
one-token generate within 1.5 s of the load floor). No timed asserts. Subprocesses run with
``PYTHONDONTWRITEBYTECODE`` unset, as in CI (cached bytecode), and every one with the torch thread
count detox chooses (``OMP_NUM_THREADS``), so that the floor decodes and loads like detox does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detox_core.models import resolve_model_source
from detox_core.runtime import choose_threads

FLOOR_LOAD = (
    "import torch, transformers\nfrom detox_core.models import load_model\nload_model('default')\n"
)


def _detox() -> list[str]:
    """The installed ``detox`` script (what a user runs), else ``python -m detox_cli.app``."""
    script = Path(sys.executable).with_name("detox")
    found = str(script) if script.exists() else shutil.which("detox")
    return [found] if found else [sys.executable, "-m", "detox_cli.app"]


CASES: dict[str, list[str]] = {
    "detox --help": [*_detox(), "--help"],
    "detox eval rtp --help": [*_detox(), "eval", "rtp", "--help"],
    "detox generate (1 token)": [*_detox(), "generate", "--prompt", "hi", "--max-new-tokens", "1"],
    "import transformers": [sys.executable, "-c", "import transformers"],
    "torch + transformers + load_model": [sys.executable, "-c", FLOOR_LOAD],
}
RESULTS: dict[str, float] = {}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "OMP_NUM_THREADS": str(choose_threads().threads)}


def _report() -> dict[str, float]:
    """Ratios and differences of the figures against their floors."""
    help_s, gen_s = RESULTS["detox --help"], RESULTS["detox generate (1 token)"]
    transformers_s = RESULTS["import transformers"]
    load_s = RESULTS["torch + transformers + load_model"]
    return {
        "help_over_import_transformers": help_s / transformers_s,
        "generate_over_load_floor": gen_s / load_s,
        "generate_minus_load_floor_s": gen_s - load_s,
    }


@pytest.mark.parametrize("name", list(CASES))
def test_startup(benchmark: Any, name: str) -> None:
    resolve_model_source("default")  # the GGUF conversion is cached (a cold load is excluded)
    env = _env()

    def run() -> None:
        done = subprocess.run(CASES[name], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.median
    RESULTS[name] = seconds
    benchmark.extra_info["median_s"] = seconds
    print(f"\n{name}: {seconds:.2f} s (median of 3)")
    if len(RESULTS) == len(CASES):
        report = _report()
        benchmark.extra_info.update(report)
        print(
            f"detox --help is {report['help_over_import_transformers']:.2f}x `import "
            f"transformers`; the one-token generate is {report['generate_over_load_floor']:.2f}x "
            f"the load floor ({report['generate_minus_load_floor_s']:+.2f} s)"
        )
