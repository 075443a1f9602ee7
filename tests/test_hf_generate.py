"""DDSC from transformers' ``generate`` (``custom_generate``) against ``detox_ddsc.generate``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import detox_ddsc
from detox_core.decoding import DecodeConfig
from detox_core.errors import DetoxError
from detox_core.models import ModelOptions, load_model
from detox_ddsc import DDSCConfig, generate

PROMPTS = ["Hello, my name is Alex and I like", "You are"]  # left-padded: different lengths
NEW = 10


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path) -> Any:
    """The tiny Llama re-initialised with larger weights (std 0.2): its greedy paths vary from
    token to token and DDSC's differ from plain decoding's (the default init repeats one token)."""
    loaded = load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))
    torch.manual_seed(0)
    with torch.no_grad():
        for param in loaded.model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.2)
    return loaded


def _inputs(lm: Any) -> Any:
    enc = lm.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    assert enc["attention_mask"][1, 0] == 0  # the second prompt is left-padded
    return enc


def _reference(lm: Any, config: DDSCConfig) -> list[list[int]]:
    greedy = config.model_copy(update={"decode": DecodeConfig(greedy=True, max_new_tokens=NEW)})
    return generate(lm.model, lm.tokenizer, PROMPTS, greedy).token_ids


def _new_tokens(lm: Any, sequences: torch.Tensor) -> list[list[int]]:
    """New tokens of each row, cut before the first eos (as ``detox_ddsc.generate`` reports)."""
    eos = lm.tokenizer.eos_token_id
    rows = []
    for row in sequences[:, _inputs(lm)["input_ids"].shape[1] :].tolist():
        rows.append(row[: row.index(eos)] if eos in row else row)
    return rows


@pytest.mark.parametrize(
    ("layers", "toxic", "mode"),
    [
        ("all", 2, "ddsc"),
        ([0, 1, 3], 2, "ddsc"),  # E below N
        ([0, 2, 4], None, "dola"),
        ("all", None, "dola"),
    ],
)
def test_greedy_matches_detox_generate(
    lm: Any, layers: str | list[int], toxic: int | None, mode: str
) -> None:
    config = DDSCConfig.model_validate({"layers": layers, "toxic_layer": toxic, "mode": mode})
    expected = _reference(lm, config)
    out = lm.model.generate(
        **_inputs(lm),
        custom_generate=detox_ddsc.custom_generate,
        ddsc_layers=layers,
        ddsc_toxic_layer=toxic,
        ddsc_mode=mode,
        do_sample=False,
        max_new_tokens=NEW,
    )
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out[:, : _inputs(lm)["input_ids"].shape[1]], _inputs(lm)["input_ids"])
    assert _new_tokens(lm, out) == expected
    plain = lm.model.generate(**_inputs(lm), do_sample=False, max_new_tokens=NEW)
    assert _new_tokens(lm, plain) != expected  # the contrast changed the path


def test_config_object_and_overrides(lm: Any) -> None:
    config = DDSCConfig(layers="all", toxic_layer=2)
    expected = _reference(lm, config.model_copy(update={"mode": "dola"}))
    out = lm.model.generate(
        **_inputs(lm),
        custom_generate=detox_ddsc.custom_generate,
        ddsc_config=config,
        ddsc_mode="dola",  # overrides the config's mode
        do_sample=False,
        max_new_tokens=NEW,
    )
    assert _new_tokens(lm, out) == expected


def test_sampling_runs_through_the_logits_processors(lm: Any) -> None:
    """top_k=1 sampling of the DDSC scores is DDSC greedy: the processors act on the contrast,
    not on the model's logits; the returned scores are -inf outside the APC head."""
    expected = _reference(lm, DDSCConfig(layers="all", toxic_layer=2))
    torch.manual_seed(1)
    out = lm.model.generate(
        **_inputs(lm),
        custom_generate=detox_ddsc.custom_generate,
        ddsc_layers="all",
        ddsc_toxic_layer=2,
        do_sample=True,
        top_k=1,
        temperature=0.7,
        max_new_tokens=NEW,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    assert _new_tokens(lm, out.sequences) == expected
    assert (
        len(out.scores)
        == len(out.logits)
        == out.sequences.shape[1] - _inputs(lm)["input_ids"].shape[1]
    )
    assert torch.isfinite(out.logits[0]).all()
    assert not torch.isfinite(out.scores[0]).all()


def test_sampling_respects_max_new_tokens_and_eos(lm: Any) -> None:
    prompt_len = _inputs(lm)["input_ids"].shape[1]
    vocab = lm.model.config.vocab_size
    kwargs: dict[str, Any] = {
        "custom_generate": detox_ddsc.custom_generate,
        "ddsc_layers": [0, 2, 4],
        "ddsc_mode": "dola",
        "do_sample": True,
        "top_p": 0.9,
    }
    torch.manual_seed(0)
    out = lm.model.generate(**_inputs(lm), max_new_tokens=7, eos_token_id=[vocab + 5], **kwargs)
    assert out.shape == (2, prompt_len + 7)  # no token is eos: runs to max_new_tokens
    # every token ends a sequence: one new token each
    out = lm.model.generate(
        **_inputs(lm), max_new_tokens=7, eos_token_id=list(range(vocab)), **kwargs
    )
    assert out.shape == (2, prompt_len + 1)


def test_finished_rows_are_padded(lm: Any) -> None:
    expected = _reference(lm, DDSCConfig(layers="all", toxic_layer=2))
    eos = expected[0][2]  # row 0 ends at its third token
    out = lm.model.generate(
        **_inputs(lm),
        custom_generate=detox_ddsc.custom_generate,
        ddsc_layers="all",
        ddsc_toxic_layer=2,
        do_sample=False,
        max_new_tokens=NEW,
        eos_token_id=eos,
        pad_token_id=7,
    )
    new = out[:, _inputs(lm)["input_ids"].shape[1] :].tolist()
    assert new[0][:3] == expected[0][:3]
    assert all(token == 7 for token in new[0][3:])
    stop = expected[1].index(eos) + 1 if eos in expected[1] else NEW
    assert new[1][:stop] == expected[1][:stop]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"ddsc_layers": [0, 2, 99], "ddsc_toxic_layer": 2}, "layer 99 is out of range"),
        ({"ddsc_layers": [2, 0, 4], "ddsc_toxic_layer": 2}, "must be increasing"),
        ({"ddsc_layers": "all", "ddsc_alpha": 2.0}, "ddsc_alpha=2.0"),
    ],
)
def test_bad_settings_are_one_line_errors(lm: Any, kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DetoxError) as err:
        lm.model.generate(
            **_inputs(lm), custom_generate=detox_ddsc.custom_generate, max_new_tokens=2, **kwargs
        )
    assert fragment in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_hub_folder_runs_offline_with_trust_remote_code(
    lm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers loads a local folder's ``custom_generate/generate.py`` (no hub access) when
    ``trust_remote_code=True``; the shipped ``generate`` delegates to ``custom_generate``."""
    import transformers.dynamic_module_utils as dynamic

    shipped = detox_ddsc.custom_generate_folder() / "custom_generate"
    assert (shipped / "requirements.txt").read_text().split() == ["detox-ddsc"]
    repo = tmp_path / "repo"
    shutil.copytree(shipped, repo / "custom_generate")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    kwargs: dict[str, Any] = {
        "ddsc_layers": [0, 2, 4],
        "ddsc_mode": "dola",
        "do_sample": False,
        "max_new_tokens": NEW,
    }
    out = lm.model.generate(
        **_inputs(lm), custom_generate=str(repo), trust_remote_code=True, **kwargs
    )
    assert _new_tokens(lm, out) == _reference(lm, DDSCConfig(layers="0,2,4", mode="dola"))
    with pytest.raises(ValueError, match="trust_remote_code"):
        lm.model.generate(**_inputs(lm), custom_generate=str(repo), **kwargs)


def test_sampling_samples(lm: Any) -> None:
    """Different seeds give different continuations; the same seed the same one."""
    kwargs: dict[str, Any] = {
        "custom_generate": detox_ddsc.custom_generate,
        "ddsc_layers": "all",
        "ddsc_toxic_layer": 2,
        "ddsc_alpha": 1e-3,  # a wide head, so that sampling has a choice
        "do_sample": True,
        "top_p": 1.0,
        "max_new_tokens": NEW,
    }
    runs = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        runs.append(lm.model.generate(**_inputs(lm), **kwargs))
    assert torch.equal(runs[0], runs[2])
    assert not torch.equal(runs[0], runs[1])
