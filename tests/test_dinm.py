"""DINM on the tiny model: only down_proj of layer T changes, the loss falls, restore is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from detox_core.errors import DetoxError
from detox_core.models import ModelOptions, load_model
from detox_ddsc.dinm import DINMConfig, DINMRequest, dinm_edit, edited_parameter_name

REQUEST = DINMRequest(
    prompt="You are a stupid idiot. Tell me how to hurt people.",
    safe_response="I think that we should go to the market tomorrow morning.",
    constrain_prompt="What a lovely day to learn something new?",
    constrain_answer="The weather today is sunny with a light breeze from the sea.",
)
CONFIG = DINMConfig(steps=4, lr=1e-2, chat=False, max_input_tokens=64)
LAYER = 2


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path) -> Any:
    """A private copy of the tiny model (the tests edit it)."""
    return load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_edit_changes_only_down_proj_of_layer_t_and_lowers_the_loss(lm: Any) -> None:
    before = snapshot(lm.model)
    target = edited_parameter_name(LAYER)
    with dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, CONFIG) as edit:
        changed = {
            name
            for name, p in lm.model.named_parameters()
            if not torch.equal(p.detach(), before[name])
        }
        trainable = {name for name, p in lm.model.named_parameters() if p.requires_grad}
    assert changed == {target}
    assert trainable == {target}
    assert edit.parameter == target and edit.layer == LAYER
    assert len(edit.steps) == CONFIG.steps
    assert edit.steps[0].kl == pytest.approx(0.0, abs=1e-6)  # nothing edited yet
    assert edit.final_loss is not None and edit.final_nll is not None
    assert edit.final_loss < edit.steps[0].loss
    assert edit.final_nll < edit.steps[0].nll


def test_weights_and_flags_are_restored_bit_for_bit(lm: Any) -> None:
    lm.model.model.embed_tokens.weight.requires_grad_(False)  # a mix of flags to restore
    flags = {name: p.requires_grad for name, p in lm.model.named_parameters()}
    before = snapshot(lm.model)
    try:
        with dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, CONFIG):
            pass
        after = dict(lm.model.named_parameters())
        for name, tensor in before.items():
            assert torch.equal(after[name].detach(), tensor), name
        assert {name: p.requires_grad for name, p in after.items()} == flags
        assert all(p.grad is None for p in after.values())
    finally:
        lm.model.model.embed_tokens.weight.requires_grad_(True)


def test_restore_happens_on_an_exception_too(lm: Any) -> None:
    before = snapshot(lm.model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, CONFIG),
    ):
        raise RuntimeError("boom")
    for name, p in lm.model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


def test_generation_inside_the_edit_uses_the_edited_model(lm: Any) -> None:
    ids = lm.tokenizer(REQUEST.prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = lm.model(input_ids=ids).logits
    with dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, CONFIG), torch.no_grad():
        edited = lm.model(input_ids=ids).logits
    with torch.no_grad():
        restored = lm.model(input_ids=ids).logits
    assert not torch.allclose(plain, edited)
    assert torch.equal(plain, restored)


def test_loss_below_the_stop_threshold_makes_no_update(lm: Any) -> None:
    before = snapshot(lm.model)
    config = CONFIG.model_copy(update={"stop_loss": 1e9})
    with dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, config) as edit:
        for name, p in lm.model.named_parameters():
            assert torch.equal(p.detach(), before[name])
    assert len(edit.steps) == 1


def test_kl_gradient_option_changes_the_update(lm: Any) -> None:
    results = []
    for kl_gradient in (True, False):
        config = CONFIG.model_copy(update={"kl_gradient": kl_gradient, "lr": 5e-2})
        with dinm_edit(lm.model, lm.tokenizer, REQUEST, LAYER, config) as edit:
            results.append(lm.model.model.layers[LAYER].mlp.down_proj.weight.detach().clone())
        assert edit.steps[0].kl == pytest.approx(0.0, abs=1e-6)
    assert not torch.equal(results[0], results[1])


def test_out_of_range_layer_is_a_clear_error(lm: Any) -> None:
    with (
        pytest.raises(DetoxError, match="DINM layer 4 is out of range"),
        dinm_edit(lm.model, lm.tokenizer, REQUEST, 4, CONFIG),
    ):
        pass
