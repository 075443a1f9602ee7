"""Shared benchmark fixtures: one intra-op thread on a CPU, and the default model loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from detox_core.models import LoadedModel, load_model


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread() -> Iterator[None]:
    """On a shared CPU, two intra-op threads mostly spin-wait (decoding gets many times slower)."""
    threads = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lm() -> LoadedModel:
    """The default model (SmolLM2-135M-Instruct)."""
    return load_model("default")
