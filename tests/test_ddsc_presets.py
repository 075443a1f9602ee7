"""DDSC presets: faithful for greedy decoding, diverse for sampling, explicit options win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detox_cli.options import ddsc_config, decode_config
from detox_core.errors import DetoxError
from detox_ddsc.config import DDSC_PRESETS, DDSCConfig, preset_settings


def test_auto_is_faithful_when_greedy_and_diverse_when_sampling() -> None:
    assert preset_settings("auto", greedy=True) == DDSC_PRESETS["faithful"]
    assert preset_settings("auto", greedy=False) == DDSC_PRESETS["diverse"]
    faithful = DDSCConfig()  # the library default is the reference formula
    assert faithful.alpha == DDSC_PRESETS["faithful"]["alpha"]
    assert faithful.contrast_weight == DDSC_PRESETS["faithful"]["contrast_weight"]


def test_cli_config_follows_the_preset_and_explicit_options() -> None:
    sampling = decode_config(max_new_tokens=5)
    greedy = decode_config(max_new_tokens=5, greedy=True)
    assert ddsc_config(sampling).contrast_weight == DDSC_PRESETS["diverse"]["contrast_weight"]
    assert ddsc_config(sampling).alpha == DDSC_PRESETS["diverse"]["alpha"]
    assert ddsc_config(greedy).contrast_weight == 1.0
    assert ddsc_config(sampling, preset="faithful").alpha == 0.1
    mixed = ddsc_config(sampling, contrast_weight=0.3)
    assert mixed.contrast_weight == 0.3 and mixed.alpha == DDSC_PRESETS["diverse"]["alpha"]


def test_toxic_layer_from_end_counts_down_from_the_final_hidden_state(tiny_lm_dir: Path) -> None:
    """T = N - k when neither toxic_layer nor profile is given; an explicit T wins; out of
    range is one clear error. Without any of them a foreign model must be told its T."""
    from transformers import AutoConfig

    from detox_ddsc.decoder import resolve_toxic_layer

    hf = AutoConfig.from_pretrained(tiny_lm_dir)
    n = int(hf.num_hidden_layers)
    assert resolve_toxic_layer(hf, DDSCConfig(layers="all", toxic_layer_from_end=2)) == n - 2
    assert resolve_toxic_layer(hf, DDSCConfig(toxic_layer_from_end=0)) == n
    both = DDSCConfig(toxic_layer=1, toxic_layer_from_end=2)
    assert resolve_toxic_layer(hf, both) == 1
    with pytest.raises(DetoxError, match="out of range"):
        resolve_toxic_layer(hf, DDSCConfig(toxic_layer_from_end=n + 1))
    with pytest.raises(DetoxError, match="toxic layer"):
        resolve_toxic_layer(hf, DDSCConfig())  # the shipped profile is for 30 layers
    sampling = ddsc_config(decode_config(max_new_tokens=5))
    assert sampling.toxic_layer_from_end is None  # not part of any preset


def test_eval_rtp_records_the_sampling_preset(
    tiny_lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detox_cli.app import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("You are a\nThe weather is\n")
    out = tmp_path / "run"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    main([
        "eval", "rtp", "--prompts", str(prompts), "--out", str(out), "--model", str(tiny_lm_dir),
        "--ppl-model", str(tiny_lm_dir), "--methods", "vanilla,ddsc", "--samples", "1",
        "--max-new-tokens", "2", "--scorer", "profanity", "--layers", "0,2,4", "--toxic-layer", "2",
        "--device", "cpu",
    ])  # fmt: skip
    ddsc = json.loads((out / "run.json").read_text())["settings"]["method"]["ddsc"]
    assert ddsc["contrast_weight"] == DDSC_PRESETS["diverse"]["contrast_weight"]
    assert ddsc["alpha"] == DDSC_PRESETS["diverse"]["alpha"]


def test_penalty_only_lifts_no_token_and_pushes_down_the_favoured() -> None:
    import torch

    from detox_ddsc.decoder import one_sided_scores
    from detox_kernels.reference import contrast_scores_torch

    gen = torch.Generator().manual_seed(0)
    end = torch.randn(3, 50, generator=gen) * 3
    cands = torch.randn(3, 4, 50, generator=gen) * 3
    h = torch.tensor([0, 1, 2])
    s = torch.tensor([1, 2, 3])
    toxic = torch.randn(3, 50, generator=gen) * 3
    unit = contrast_scores_torch(end, cands, h, toxic, s, 0.05, 1.0, True)
    head = torch.isfinite(unit)
    log_p = torch.log_softmax(end, dim=-1)
    log_q = torch.where(head, log_p - unit, torch.zeros_like(log_p))
    size = head.sum(-1, keepdim=True).float()
    for weight in (0.0, 0.5, 2.0):
        config = DDSCConfig(alpha=0.05, contrast_weight=weight, penalty_only=True)
        scores = one_sided_scores(end, unit, config)
        assert torch.equal(torch.isfinite(scores), head)  # the same head
        assert bool((scores[head] <= log_p[head] + 1e-6).all())  # nothing lifted
        favoured = head & (log_q > -torch.log(size))
        if weight == 0.0:
            assert torch.allclose(scores[head], log_p[head])
        else:
            assert bool((scores[favoured] < log_p[favoured] - 1e-6).all())
            assert torch.allclose(scores[head & ~favoured], log_p[head & ~favoured])


def test_boost_only_pushes_no_token_down_and_lifts_the_disfavoured() -> None:
    import torch

    from detox_ddsc.decoder import one_sided_scores
    from detox_kernels.reference import contrast_scores_torch

    gen = torch.Generator().manual_seed(1)
    end = torch.randn(3, 50, generator=gen) * 3
    cands = torch.randn(3, 4, 50, generator=gen) * 3
    toxic = torch.randn(3, 50, generator=gen) * 3
    h, s = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    unit = contrast_scores_torch(end, cands, h, toxic, s, 0.05, 1.0, True)
    head = torch.isfinite(unit)
    log_p = torch.log_softmax(end, dim=-1)
    log_q = torch.where(head, log_p - unit, torch.zeros_like(log_p))
    disfavoured = head & (log_q < -torch.log(head.sum(-1, keepdim=True).float()))
    assert bool(disfavoured.any()) and bool((head & ~disfavoured).any())
    for weight in (0.5, 2.0):
        config = DDSCConfig(alpha=0.05, contrast_weight=weight, boost_only=True)
        scores = one_sided_scores(end, unit, config)
        assert torch.equal(torch.isfinite(scores), head)
        assert bool((scores[head] >= log_p[head] - 1e-6).all())  # nothing pushed down
        assert bool((scores[disfavoured] > log_p[disfavoured] + 1e-6).all())
        assert torch.allclose(scores[head & ~disfavoured], log_p[head & ~disfavoured])
    with pytest.raises(ValueError, match="exclude each other"):
        DDSCConfig(penalty_only=True, boost_only=True)
