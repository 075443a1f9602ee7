"""DDSC decoding on CUDA: the fused Triton kernels inside the real decode loop (needs a GPU).

The tiny random Llama decodes greedily on the GPU through the Triton kernels (the default for
CUDA tensors, chosen in ``detox_kernels.dispatch``) and through the plain-torch path
(``DETOX_KERNELS=torch``), and on the CPU: the tokens agree. Run on a CUDA machine with
``uv run pytest tests/test_ddsc_cuda.py`` (``benchmarks/cuda_check.sh`` runs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

PROMPTS = ["hello world, this is", "the cat sat on the", "a b c d"]


@pytest.mark.parametrize(("layers", "toxic"), [("0,1,2,3,4", 2), ("0,2,4", 3), ("0,1,2,3,4", None)])
def test_ddsc_on_cuda_matches_the_torch_path_and_the_cpu(
    tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch, layers: str, toxic: int | None
) -> None:
    from detox_core.decoding import DecodeConfig
    from detox_core.models import ModelOptions, load_model
    from detox_ddsc import DDSCConfig, generate
    from detox_kernels import contrast_kernel, select_kernel

    calls: list[str] = []

    def spy(module: Any, name: str) -> None:
        original = getattr(module, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, run)

    spy(select_kernel, "select_layers_triton")
    spy(contrast_kernel, "contrast_scores_triton")
    config = DDSCConfig(
        layers=layers,
        toxic_layer=toxic,
        mode="ddsc" if toxic is not None else "dola",
        decode=DecodeConfig(max_new_tokens=12, greedy=True),
    )
    gpu = load_model(str(tiny_lm_dir), ModelOptions(device="cuda", dtype="float32"))
    fused = generate(gpu.model, gpu.tokenizer, PROMPTS, config)
    assert {"select_layers_triton", "contrast_scores_triton"} <= set(calls)
    monkeypatch.setenv("DETOX_KERNELS", "torch")
    calls.clear()
    eager = generate(gpu.model, gpu.tokenizer, PROMPTS, config)
    assert not calls
    monkeypatch.delenv("DETOX_KERNELS")
    cpu = load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))
    on_cpu = generate(cpu.model, cpu.tokenizer, PROMPTS, config)
    assert fused.token_ids == eager.token_ids == on_cpu.token_ids
    # The random model's candidate layers often nearly tie, so the chosen layers may differ by
    # rounding between paths (the tokens did not): check only that they are candidates.
    candidates = {int(x) for x in layers.split(",")[:-1]}
    assert all(h in candidates for row in fused.layers for h, _ in row)
    assert all(len(ids) > 0 for ids in fused.token_ids)
