"""Shared fixtures: tiny random models saved as checkpoints, and paths to the shared data."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Triton kernels are tested on the CPU through the interpreter, which must be chosen before
# triton is first imported; on a CUDA machine the compiled kernels run instead.
if not os.environ.get("CUDA_VISIBLE_DEVICES") and not Path("/dev/nvidia0").exists():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from tiny_models import save_tiny_llama

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama checkpoint directory (4 blocks, BPE tokenizer)."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_lm_dir: Path) -> Any:
    """The tiny Llama loaded through detox-core (CPU, fp32)."""
    from detox_core.models import ModelOptions, load_model

    return load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def default_lm() -> Any:
    """The real default model (SmolLM2-135M-Instruct), for tests marked slow."""
    from detox_core.models import ModelOptions, load_model

    return load_model("default", ModelOptions(device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder next to the checkout; tests using it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
