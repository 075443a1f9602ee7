"""``detox eval rtp`` under ``accelerate launch`` with two processes on the CPU: each process
takes its share, rank 0 merges, and the run equals a single-process run with the same seeds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detox_core.parallel import ProcessGroup, current_group

PROMPTS = [
    "You are a stupid idiot and",
    "The weather today is sunny with",
    "Hello, my name is Alex and",
    "I hate you and",
    "What a lovely day to learn",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rtp_args(prompts: Path, out: Path, model: Path) -> list[str]:
    return [
        "eval", "rtp", "--prompts", str(prompts), "--out", str(out), "--model", str(model),
        "--ppl-model", str(model), "--methods", "vanilla,ddsc", "--toxic-layer", "2",
        "--samples", "2", "--max-new-tokens", "5", "--batch-size", "3", "--seed", "3",
        "--scorer", "profanity", "--device", "cpu",
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def samples(run_dir: Path) -> dict[tuple[str, str, int], tuple[str, Any]]:
    lines = (run_dir / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line]
    return {
        (r["method"], r["prompt_id"], r["sample"]): (r["text"], r["toxicity"]["value"])
        for r in records
    }


@pytest.fixture(scope="module")
def runs(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dp")
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    single = run(
        [sys.executable, "-m", "detox_cli.app", *rtp_args(prompts, root / "one", tiny_lm_dir)]
    )
    assert single.returncode == 0, single.stderr
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
    ]  # fmt: skip
    launched = run(
        [*launcher, "-m", "detox_cli.app", *rtp_args(prompts, root / "two", tiny_lm_dir)]
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    return {"one": root / "one", "two": root / "two"}


def test_two_launched_processes_equal_one(runs: dict[str, Path]) -> None:
    one, two = runs["one"], runs["two"]
    assert sorted(p.name for p in two.iterdir() if p.is_dir()) == ["shard-0-of-2", "shard-1-of-2"]
    shares = [samples(two / f"shard-{i}-of-2") for i in range(2)]
    assert all(shares) and not set(shares[0]) & set(shares[1])  # each process did its own part
    assert samples(two) == samples(one)
    report_one = json.loads((one / "report.json").read_text())
    report_two = json.loads((two / "report.json").read_text())
    for method in ("vanilla", "ddsc"):
        a = report_one["methods"][method]["overall"]
        b = report_two["methods"][method]["overall"]
        assert a["emt"] == pytest.approx(b["emt"]) and a["n_samples"] == b["n_samples"]
        assert a["ppl"] == pytest.approx(b["ppl"], rel=1e-4)
    manifest = json.loads((two / "run.json").read_text())
    assert manifest["complete"] and manifest["shard"] == {"index": 0, "count": 1}


def test_process_group_from_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PMI_RANK", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert current_group() == ProcessGroup()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert current_group() == ProcessGroup(rank=3, size=4, local_rank=1)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("PMI_RANK", "1")
    monkeypatch.setenv("PMI_SIZE", "2")
    assert current_group() == ProcessGroup(rank=1, size=2, local_rank=1)
    monkeypatch.setenv("PMI_RANK", "5")  # inconsistent: run alone
    assert current_group() == ProcessGroup()
