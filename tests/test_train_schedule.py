"""The CMD learning-rate schedule and the batching of the contrastive anchors."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import make_records, one_thread, write_records  # noqa: F401

from detox_cmd.training import CMDTrainConfig, LossRecord, train
from detox_cmd.training import anchors as anchors_module
from detox_cmd.training.schedule import lr_factor, warmup_cosine


def test_warmup_never_starts_at_zero_and_reaches_the_peak() -> None:
    factors = [lr_factor(k, warmup=3, total=10) for k in range(10)]
    assert factors[0] == pytest.approx(0.25)
    assert factors[:4] == sorted(factors[:4]) and factors[3] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(factors[3:]))
    assert factors[-1] > 0
    assert lr_factor(0, warmup=0, total=5) == pytest.approx(1.0)


@pytest.mark.parametrize("processes", [1, 3])
def test_scheduler_follows_optimizer_steps_under_several_processes(processes: int) -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup=2, total=6, processes=processes)
    seen = []
    for _ in range(6):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        for _ in range(processes):  # accelerate steps it once per process
            scheduler.step()
    assert seen == pytest.approx([lr_factor(k, 2, 6) for k in range(6)])


def test_first_logged_step_has_a_learning_rate(tiny_lm_dir: Path, tmp_path: Path) -> None:
    data = write_records(tmp_path / "train.jsonl", make_records())
    config = CMDTrainConfig(
        model=str(tiny_lm_dir),
        data_path=data,
        output_dir=tmp_path / "run",
        max_steps=4,
        warmup_ratio=0.5,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        use_cl=False,
    )
    train(config, show_progress=False)
    lines = (tmp_path / "run" / "losses.jsonl").read_text().splitlines()
    lrs = [LossRecord.model_validate_json(line).lr for line in lines]
    # warmup of 2 steps: 1/3 and 2/3 of the peak, the peak, then the cosine decay
    assert lrs[:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2]) and 0 < lrs[3] < lrs[2]


def test_anchors_of_a_step_are_sampled_in_one_batch(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = anchors_module.sample_anchors

    def counting(model: Any, tokenizer: Any, prefixes: list[str], *rest: Any) -> list[str]:
        calls.append(len(prefixes))
        return real(model, tokenizer, prefixes, *rest)

    monkeypatch.setattr(anchors_module, "sample_anchors", counting)
    records = make_records()
    data = write_records(tmp_path / "train.jsonl", records)
    config = CMDTrainConfig(
        model=str(tiny_lm_dir),
        data_path=data,
        output_dir=tmp_path / "run",
        max_steps=1,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=4,
        cl_anchor_tokens=4,
    )
    result = train(config, show_progress=False)
    with_negatives = sum(1 for r in records if r.negatives)
    # one decode call for the four micro-batches of the step, one row per record with negatives
    assert calls == [with_negatives]
    assert result.last is not None and result.last.cl_groups == with_negatives
