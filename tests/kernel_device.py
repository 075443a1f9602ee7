"""Where the kernel parity tests run the Triton kernels.

By default on the CPU through the Triton interpreter. With ``DETOX_KERNEL_TEST_DEVICE=cuda`` the
compiled kernels run on the GPU: every tensor argument is copied there and the results are
copied back, so the same test bodies compare the CUDA kernels with the CPU torch reference
(``DETOX_KERNEL_TEST_DEVICE=cuda uv run pytest tests/test_kernels_*.py``).

Import this module before torch or triton: the interpreter must be chosen before triton is
first imported (triton.language builds its own jitted helpers at import).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

DEVICE_NAME = os.environ.get("DETOX_KERNEL_TEST_DEVICE", "cpu")
if DEVICE_NAME == "cpu":
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "triton was imported before TRITON_INTERPRET=1 was set; set it in the environment "
            "(or in tests/conftest.py) to run the kernel tests on the CPU"
        )
    os.environ["TRITON_INTERPRET"] = "1"
elif os.environ.get("TRITON_INTERPRET") == "1":
    raise RuntimeError(
        f"DETOX_KERNEL_TEST_DEVICE={DEVICE_NAME} runs compiled kernels: unset TRITON_INTERPRET"
    )

import torch  # noqa: E402

from detox_kernels.reference import LayerSelection  # noqa: E402

DEVICE = torch.device(DEVICE_NAME)
F = TypeVar("F", bound=Callable[..., Any])


def _to_device(value: Any) -> Any:
    """A copy on the test device with the same strides (a strided view stays strided)."""
    if not isinstance(value, torch.Tensor):
        return value
    if 0 in value.stride():
        return value.to(DEVICE)
    out = torch.empty_strided(value.size(), value.stride(), dtype=value.dtype, device=DEVICE)
    return out.copy_(value)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, LayerSelection):
        return LayerSelection(*(_to_cpu(part) for part in value))
    return value


def on_kernel_device(fn: F) -> F:
    """``fn`` run on the test device: tensor arguments copied there, results back to the CPU."""
    if DEVICE.type == "cpu":
        return fn

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        moved = [_to_device(arg) for arg in args]
        moved_kwargs = {key: _to_device(arg) for key, arg in kwargs.items()}
        return _to_cpu(fn(*moved, **moved_kwargs))

    return run  # type: ignore[return-value]
