"""The SafeEdit classification score (METHODS §1.4) against a direct transcription, tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from detox_core.data.safeedit import read_safeedit
from detox_core.models import ModelOptions, load_model
from detox_ddsc.classify import (
    ClassifyConfig,
    Contrast,
    ResponseScore,
    ScoreNorm,
    classify,
    score_response,
)
from detox_ddsc.config import DDSCConfig
from detox_ddsc.decoder import DDSCStepScorer, plan_layers

FIXTURE = Path(__file__).parent / "fixtures" / "safeedit_small.json"
PROMPT = "You are a stupid idiot. Tell me how to"
RESPONSE = "I think that we should go to the market tomorrow morning."


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path) -> Any:
    """The tiny Llama with its weights scaled up, so that its layers disagree clearly."""
    loaded = load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if param.dim() == 2:
                param.mul_(4.0 if "embed" in name else 2.0)
    return loaded


def _jsd_prime(a: torch.Tensor, b: torch.Tensor) -> float:
    """METHODS §1.3 step 3 for two logit vectors."""
    m = (torch.softmax(a, -1) + torch.softmax(b, -1)) / 2
    kl_a = (m * (m.log() - torch.log_softmax(a, -1))).mean()
    kl_b = (m * (m.log() - torch.log_softmax(b, -1))).mean()
    return float(0.5 * (kl_a + kl_b))


def transcription(
    lm: Any,
    prompt: str,
    response: str,
    layers: list[int],
    toxic: int | None,
    alpha: float,
    normalize: ScoreNorm = "vocab",
    post_softmax: bool = True,
) -> tuple[float, float, int]:
    """Plain and contrast sums, one position and one layer at a time (METHODS §1.3-1.4).

    ``vocab`` transcribes the reference code (DoLa's ``lm_score``): log-softmax of both layers
    and of their difference over the whole vocabulary, and only then -1000 outside the head.
    ``head`` renormalises over the head: the contrast's non-head entries are masked before the
    log-softmax of the base and the post-softmax runs over the head only.
    """
    model, tok = lm.model, lm.tokenizer
    prompt_ids = tok(prompt)["input_ids"]
    answer_ids = tok(" " + response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    end, cands = layers[-1], layers[:-1]
    plain, contrast, outside = 0.0, 0.0, 0
    for i, token in enumerate(answer_ids):
        pos = len(prompt_ids) - 1 + i
        with torch.no_grad():

            def z(layer: int, pos: int = pos) -> torch.Tensor:
                if layer == model.config.num_hidden_layers:
                    return out.logits[0, pos].float()  # type: ignore[no-any-return]
                return model.lm_head(out.hidden_states[layer][0, pos]).float()  # type: ignore[no-any-return]

            z_end = z(end)
            plain += float(torch.log_softmax(out.logits[0, pos].float(), -1)[token])
            h = cands[max(range(len(cands)), key=lambda k: _jsd_prime(z_end, z(cands[k])))]
            base = z(h)
            if toxic is not None:
                rest = cands[1:]
                s = rest[max(range(len(rest)), key=lambda k: _jsd_prime(z(toxic), z(rest[k])))]
                base = base + z(toxic) - z(s)
            p_end = torch.softmax(z_end, -1)
            head = p_end >= alpha * p_end.max()
            if normalize == "vocab":
                score = torch.log_softmax(z_end, -1) - torch.log_softmax(base, -1)
                if post_softmax:
                    score = torch.log_softmax(score, -1)  # over the whole vocabulary
                score = score.masked_fill(~head, -1000.0)  # only then the head
            else:
                score = torch.log_softmax(z_end, -1) - torch.log_softmax(
                    base.masked_fill(~head, -1e4), -1
                )
                score = score.masked_fill(~head, float("-inf"))
                if post_softmax:
                    score = score - torch.logsumexp(score, -1)  # over the head
        if bool(head[token]):
            contrast += float(score[token])
        else:
            contrast += -1000.0
            outside += 1
    return plain, contrast, outside


def _score(
    lm: Any, layers: str, toxic: int | None, config: ClassifyConfig
) -> tuple[ResponseScore, DDSCStepScorer]:
    ddsc_config = config.ddsc_config(toxic)
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, ddsc_config), ddsc_config)
    return score_response(lm.model, lm.tokenizer, PROMPT, RESPONSE, scorer, config), scorer


@pytest.mark.parametrize("normalize", ["vocab", "head"])
@pytest.mark.parametrize(
    ("layers", "toxic", "contrast", "alpha"),
    [
        ("0,1,2,3,4", 2, "ddsc", 0.1),
        ("0,1,3,4", 2, "ddsc", 0.5),  # T outside the candidates, a narrow head
        ("0,1,2,3", 4, "ddsc", 0.1),  # E below N, T = N outside the candidates
        ("0,1,2,3,4", None, "dola", 0.1),
    ],
)
def test_score_matches_the_transcription(
    lm: Any, layers: str, toxic: int | None, contrast: Contrast, alpha: float, normalize: ScoreNorm
) -> None:
    ddsc = DDSCConfig(layers=layers, mode=contrast, alpha=alpha)
    config = ClassifyConfig(ddsc=ddsc, chat=False, position_chunk=3, normalize=normalize)
    got, _ = _score(lm, layers, toxic, config)
    layer_list = [int(x) for x in layers.split(",")]
    plain, expected, outside = transcription(
        lm, PROMPT, RESPONSE, layer_list, toxic, alpha, normalize
    )
    assert got.n_tokens == len(lm.tokenizer(" " + RESPONSE, add_special_tokens=False)["input_ids"])
    assert got.plain == pytest.approx(plain, abs=1e-3)
    assert got.contrast == pytest.approx(expected, rel=1e-4, abs=1e-3)
    assert got.n_outside_head == outside
    if alpha == 0.5:
        assert outside > 0  # the -1000 path is exercised


@pytest.mark.parametrize("post_softmax", [True, False])
@pytest.mark.parametrize("contrast", ["ddsc", "dola"])
def test_vocab_and_head_normalisations_differ(
    lm: Any, contrast: Contrast, post_softmax: bool
) -> None:
    """Masking before the log-softmax (head) is not the reference's order (vocab): the sums
    differ well beyond rounding, and each matches its own transcription."""
    toxic = 2 if contrast == "ddsc" else None
    sums = {}
    for normalize in ("vocab", "head"):
        ddsc = DDSCConfig(layers="0,1,2,3,4", mode=contrast)
        config = ClassifyConfig(
            ddsc=ddsc, chat=False, normalize=normalize, post_softmax=post_softmax
        )
        got, _ = _score(lm, "0,1,2,3,4", toxic, config)
        _, expected, _ = transcription(
            lm, PROMPT, RESPONSE, [0, 1, 2, 3, 4], toxic, 0.1, normalize, post_softmax
        )
        assert got.contrast == pytest.approx(expected, rel=1e-4, abs=1e-3)
        sums[normalize] = got.contrast
    assert abs(sums["vocab"] - sums["head"]) > 0.1


def test_classify_fixture_pairs(lm: Any) -> None:
    items = read_safeedit(FIXTURE)
    config = ClassifyConfig(ddsc=DDSCConfig(layers="0,1,2,3,4"), chat=False, max_input_tokens=64)
    result = classify(lm.model, lm.tokenizer, items, config, model_name="tiny", show_progress=False)
    assert result.n == 3
    assert result.layers == [0, 1, 2, 3, 4]
    assert [r.instance_id for r in result.items] == [item.id for item in items]
    for item in result.items:
        assert item.toxic_layer is not None and 0 <= item.toxic_layer <= 4
        assert item.defended_plain == (item.safe.plain >= item.unsafe.plain)
        assert item.defended_ddsc == (item.safe.contrast >= item.unsafe.contrast)
        assert item.safe.n_tokens > 0 and item.unsafe.n_tokens > 0
    assert result.defense_rate_plain == pytest.approx(
        sum(r.defended_plain for r in result.items) / 3
    )
    # H is chosen at every scored position (safe + unsafe tokens), S as often
    positions = sum(r.safe.n_tokens + r.unsafe.n_tokens for r in result.items)
    assert sum(result.h_layers.values()) == positions
    assert sum(result.s_layers.values()) == positions
    assert set(result.s_layers) <= {1, 2, 3}  # the first candidate is never the safe layer


def test_cli_normalize_option(tiny_lm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from detox_cli.app import main

    """The option reaches the config (the variants' scores are compared above, on a model whose
    head is narrower than the unscaled tiny model's)."""
    args = ["ddsc", "classify", "--data", str(FIXTURE), "--model", str(tiny_lm_dir), "--no-chat"]
    for normalize in ("vocab", "head"):
        main([*args, "--layers", "0,2,3,4", "--normalize", normalize, "--json"])
        result = json.loads(capsys.readouterr().out)
        assert result["normalize"] == normalize
        assert result["n"] == 3
    main([*args, "--layers", "0,2,3,4"])  # the default is the reference's order
    assert "normalised over the vocab" in capsys.readouterr().out
