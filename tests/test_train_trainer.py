"""The CMD trainer: the loss falls, resuming reproduces an uninterrupted run, run files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import make_records, one_thread, write_records  # noqa: F401

from detox_cmd.training import CMDTrainConfig, LossRecord, TrainRunInfo, train
from detox_cmd.training.lora import lora_target_modules
from detox_core.errors import DetoxError


def _config(model_dir: Path, data: Path, out: Path, **changes: Any) -> CMDTrainConfig:
    settings: dict[str, Any] = {
        "model": str(model_dir),
        "data_path": data,
        "output_dir": out,
        "per_device_train_batch_size": 2,
        "learning_rate": 2e-2,
        "warmup_ratio": 0.0,
    }
    settings.update(changes)
    return CMDTrainConfig.model_validate(settings)


def _losses(out: Path) -> list[LossRecord]:
    lines = (out / "losses.jsonl").read_text().splitlines()
    return [LossRecord.model_validate_json(line) for line in lines]


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_records(tmp_path_factory.mktemp("chains") / "train.jsonl", make_records())


def test_lm_loss_falls_on_a_tiny_model(tiny_lm_dir: Path, data: Path, tmp_path: Path) -> None:
    config = _config(
        tiny_lm_dir,
        data,
        tmp_path / "run",
        max_steps=12,
        per_device_train_batch_size=4,
        use_cl=False,
    )
    result = train(config, show_progress=False)
    losses = _losses(tmp_path / "run")
    assert result.completed and result.steps == 12 == len(losses)
    assert all(r.cl is None and r.total == r.lm for r in losses)
    late = sum(r.lm for r in losses[-3:]) / 3
    assert late < losses[0].lm - 0.03


def test_contrastive_term_is_logged_and_added(
    tiny_lm_dir: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = train(_config(tiny_lm_dir, data, out, max_steps=2, cl_weight=0.5), show_progress=False)
    losses = _losses(out)
    # every batch of 2 holds at least one record with negatives
    assert all(r.cl is not None and r.cl > 0 and r.cl_groups >= 1 for r in losses)
    assert all(r.total == pytest.approx(r.lm + 0.5 * (r.cl or 0.0)) for r in losses)
    assert [r.step for r in losses] == [1, 2]
    assert losses[0].lr == pytest.approx(2e-2)  # no warmup: peak first, then cosine decay
    assert losses[1].lr < losses[0].lr
    assert (out / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = TrainRunInfo.model_validate_json((out / "train_config.json").read_text())
    assert info.base_model == str(tiny_lm_dir.resolve())
    assert info.lora_target_modules == ["q_proj", "v_proj"]
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 8 and adapter_config["lora_alpha"] == 16
    assert adapter_config["lora_dropout"] == pytest.approx(0.05)
    assert result.adapter_dir == out / "adapter"


def test_resume_reproduces_an_uninterrupted_run(tiny_lm_dir: Path, tmp_path: Path) -> None:
    # 3 rows in batches of 2: two batches per epoch, so step 3 stops in the middle of an epoch
    data = write_records(tmp_path / "train.jsonl", make_records(3))
    straight = _config(tiny_lm_dir, data, tmp_path / "straight", max_steps=5, save_steps=2)
    train(straight, show_progress=False)

    pieces = straight.model_copy(update={"output_dir": tmp_path / "pieces"})
    first = train(pieces, stop_at_step=3, show_progress=False)
    assert not first.completed and first.steps == 3
    assert not (tmp_path / "pieces" / "adapter").exists()
    resumed = train(pieces.model_copy(update={"resume": True}), show_progress=False)
    assert resumed.completed and resumed.steps == 5

    log = (tmp_path / "straight" / "losses.jsonl").read_text()
    assert (tmp_path / "pieces" / "losses.jsonl").read_text() == log
    assert len(_losses(tmp_path / "straight")) == 5
    want, got = _adapter(tmp_path / "straight"), _adapter(tmp_path / "pieces")
    assert want.keys() == got.keys() and len(want) > 0
    for name in want:
        assert torch.allclose(want[name], got[name], rtol=1e-6, atol=1e-7), name
    assert any(float(w.abs().sum()) > 0 for n, w in want.items() if "lora_B" in n)


def test_gradient_checkpointing_does_not_change_the_result(
    tiny_lm_dir: Path, data: Path, tmp_path: Path
) -> None:
    plain = _config(tiny_lm_dir, data, tmp_path / "plain", max_steps=2)
    train(plain, show_progress=False)
    saving = plain.model_copy(
        update={"output_dir": tmp_path / "ckpt", "gradient_checkpointing": True}
    )
    train(saving, show_progress=False)
    for want, got in zip(_losses(tmp_path / "plain"), _losses(tmp_path / "ckpt"), strict=True):
        assert got.lm == pytest.approx(want.lm, rel=1e-5)
        assert got.cl == pytest.approx(want.cl, rel=1e-4)


def test_existing_run_needs_resume_and_same_settings(
    tiny_lm_dir: Path, data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = _config(tiny_lm_dir, data, out, max_steps=1, use_cl=False)
    train(config, show_progress=False)
    with pytest.raises(DetoxError, match="already holds a training run"):
        train(config, show_progress=False)
    changed = config.model_copy(update={"resume": True, "learning_rate": 1e-3})
    with pytest.raises(DetoxError, match="learning_rate"):
        train(changed, show_progress=False)


def test_lora_targets_per_architecture(tiny_lm: Any) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert lora_target_modules(gpt2) == ["c_attn"]
    assert lora_target_modules(tiny_lm.model) == ["q_proj", "v_proj"]
    assert lora_target_modules(tiny_lm.model, ["k_proj"]) == ["k_proj"]
    every = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert lora_target_modules(tiny_lm.model, ["all-linear"]) == every  # lm_head left out
    assert lora_target_modules(gpt2, ["all-linear"]) == ["c_attn", "c_fc", "c_proj"]
    with pytest.raises(DetoxError, match="no module named"):
        lora_target_modules(tiny_lm.model, ["c_attn"])


@pytest.mark.slow
def test_default_model_trains_a_couple_of_steps(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = CMDTrainConfig(
        data_path=data,
        output_dir=out,
        max_steps=2,
        per_device_train_batch_size=2,
        max_length=128,
        cl_anchor_tokens=8,
    )
    result = train(config, show_progress=False)
    losses = _losses(out)
    assert result.completed and len(losses) == 2
    assert all(r.cl is not None for r in losses)
    assert 0 < losses[0].lm < 20
    weights = _adapter(out)
    assert any("q_proj" in n for n in weights) and any("v_proj" in n for n in weights)
