"""The DDSC step against a direct transcription of METHODS §1.3, and the decoder's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from detox_core.decoding import DecodeConfig, decode
from detox_core.models import ModelOptions, load_model
from detox_ddsc import DDSCConfig, generate
from detox_ddsc.decoder import DDSCStepScorer, plan_layers


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path) -> Any:
    """The tiny random Llama with its weights scaled up (embeddings x4, other matrices x2).

    Unscaled, its layers give nearly the same next-token distribution (divergences ~1e-10, so
    rounding decides H and S); scaled, the divergences differ clearly and the APC head holds
    dozens of tokens.
    """
    loaded = load_model(str(tiny_lm_dir), ModelOptions(device="cpu", dtype="float32"))
    with torch.no_grad():
        for name, param in loaded.model.named_parameters():
            if param.dim() == 2:
                param.mul_(4.0 if "embed" in name else 2.0)
    return loaded


PROMPTS = [
    "Hello, my name is Alex and I like",
    "You are a",
    "The weather today is sunny with",
]


def _jsd_prime(a: torch.Tensor, b: torch.Tensor) -> float:
    """METHODS §1.3 step 3, written out for two logit vectors."""
    m = (torch.softmax(a, -1) + torch.softmax(b, -1)) / 2
    kl_a = (m * (m.log() - torch.log_softmax(a, -1))).mean()
    kl_b = (m * (m.log() - torch.log_softmax(b, -1))).mean()
    return float(0.5 * (kl_a + kl_b))


def _true_jsd(a: torch.Tensor, b: torch.Tensor) -> float:
    p, q = torch.softmax(a, -1), torch.softmax(b, -1)
    m = (p + q) / 2
    return float(0.5 * ((p * (p / m).log()).sum() + (q * (q / m).log()).sum()))


def reference_step(
    lm: Any,
    prompts: list[str],
    layers: list[int],
    toxic: int | None,
    alpha: float = 0.1,
    early_norm: bool = False,
    divergence: str = "reference",
) -> tuple[torch.Tensor, list[int], list[int | None], Any, torch.Tensor]:
    """One decoding step exactly as METHODS §1.3 describes it, one row and one layer at a time."""
    model, tok = lm.model, lm.tokenizer
    n = model.config.num_hidden_layers
    enc = tok(prompts, return_tensors="pt", padding=True)
    position_ids = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(**enc, position_ids=position_ids, output_hidden_states=True)
        hs = out.hidden_states

        def z(layer: int, row: int) -> torch.Tensor:
            h = hs[layer][row, -1]
            if early_norm and layer != n:
                h = model.model.norm(h)
            logits: torch.Tensor = model.lm_head(h).float()
            return logits

        div = _jsd_prime if divergence == "reference" else _true_jsd
        end, cands = layers[-1], layers[:-1]
        scores, hs_chosen, ss_chosen = [], [], []
        for row in range(len(prompts)):
            z_end = out.logits[row, -1].float() if end == n else z(end, row)
            h_layer = cands[max(range(len(cands)), key=lambda k: div(z_end, z(cands[k], row)))]
            base = z(h_layer, row)
            s_layer = None
            if toxic is not None:
                z_t = z(toxic, row)
                rest = cands[1:]
                s_layer = rest[max(range(len(rest)), key=lambda k: div(z_t, z(rest[k], row)))]
                base = base + z_t - z(s_layer, row)
            p_end = torch.softmax(z_end, -1)
            head = p_end >= alpha * p_end.max()
            base = base.masked_fill(~head, -1000.0)
            score = torch.log_softmax(z_end, -1) - torch.log_softmax(base, -1)
            scores.append(score.masked_fill(~head, float("-inf")))
            hs_chosen.append(h_layer)
            ss_chosen.append(s_layer)
    return torch.stack(scores), hs_chosen, ss_chosen, out, out.logits[:, -1]


@pytest.mark.parametrize(
    ("layers", "toxic", "early_norm", "divergence"),
    [
        ("0,1,2,3,4", 2, False, "reference"),  # MODE-1, T among the candidates
        ("0,2,4", 3, False, "reference"),  # MODE-2, T not a candidate
        ("0,1,3", 2, False, "reference"),  # end layer below N
        ("0,1,4", 4, False, "reference"),  # T == E
        ("0,1,2,4", 3, True, "reference"),  # early layers through the final norm
        ("0,1,2,3,4", 2, False, "jsd"),  # the true Jensen-Shannon divergence
        ("0,1,2,3,4", None, False, "reference"),  # DoLa
    ],
)
def test_one_step_matches_the_transcription(
    lm: Any, layers: str, toxic: int | None, early_norm: bool, divergence: str
) -> None:
    config = DDSCConfig(
        layers=layers,
        toxic_layer=toxic,
        mode="ddsc" if toxic is not None else "dola",
        early_norm=early_norm,
        divergence=divergence,
    )
    layer_list = [int(x) for x in layers.split(",")]
    expected, h_ref, s_ref, outputs, logits = reference_step(
        lm, PROMPTS, layer_list, toxic, early_norm=early_norm, divergence=divergence
    )
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, config), config)
    with torch.no_grad():
        scores = scorer(logits, outputs)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(scores), finite)
    assert torch.allclose(scores[finite], expected[finite], atol=1e-4)
    assert scorer.h_steps[0].tolist() == h_ref
    if toxic is None:
        assert scorer.s_steps == []
    else:
        assert scorer.s_steps[0].tolist() == s_ref

    # Whole decoder, greedy: the first token is the argmax of the transcribed score (where that
    # argmax is clear: with T == E and H == S the score is flat on the head).
    greedy = config.model_copy(update={"decode": DecodeConfig(max_new_tokens=1, greedy=True)})
    result = generate(lm.model, lm.tokenizer, PROMPTS, greedy)
    eos = lm.tokenizer.eos_token_id
    top2 = expected.topk(2, dim=-1)
    for row, ids in enumerate(result.token_ids):
        if top2.values[row, 0] - top2.values[row, 1] > 1e-3:
            assert (ids[0] if ids else eos) == int(top2.indices[row, 0])
    assert [trace[0] for trace in result.layers] == list(zip(h_ref, s_ref, strict=True))


def test_batch_mean_selects_one_layer_for_all_rows(lm: Any) -> None:
    decode_config = DecodeConfig(max_new_tokens=6, greedy=True)
    config = DDSCConfig(layers="all", toxic_layer=2, selection="batch-mean", decode=decode_config)
    plan = plan_layers(lm.model, config)
    scorer = DDSCStepScorer(lm.model, plan, config)
    expected_h = []
    _, _, _, outputs, logits = reference_step(lm, PROMPTS, [0, 1, 2, 3, 4], 2)
    with torch.no_grad():
        scorer(logits, outputs)
        rows = scorer.head_logits(outputs)
    # the reference: mean of JSD' over the batch, then one argmax
    for k in range(4):
        expected_h.append(
            sum(_jsd_prime(logits[b].float(), rows[b, k].float()) for b in range(len(PROMPTS)))
        )
    best = max(range(4), key=lambda k: expected_h[k])
    assert scorer.h_steps[0].tolist() == [best] * len(PROMPTS)

    result = generate(lm.model, lm.tokenizer, PROMPTS, config)
    for step in range(decode_config.max_new_tokens):
        assert len({trace[step][0] for trace in result.layers if len(trace) > step}) <= 1


def test_per_row_batch_equals_single_rows(lm: Any) -> None:
    config = DDSCConfig(
        layers="all", toxic_layer=2, decode=DecodeConfig(max_new_tokens=6, greedy=True)
    )
    batch = generate(lm.model, lm.tokenizer, PROMPTS, config)
    for row, prompt in enumerate(PROMPTS):
        single = generate(lm.model, lm.tokenizer, [prompt], config)
        assert single.token_ids[0] == batch.token_ids[row]
        assert single.layers[0] == batch.layers[row]


def test_zero_weight_is_plain_decoding(lm: Any) -> None:
    # w = 0: the score is log p_E on the APC head. The argmax of p_E is always in the head, so
    # greedy decoding is exactly plain greedy decoding (without a repetition penalty).
    greedy = DecodeConfig(max_new_tokens=8, greedy=True)
    plain = decode(lm.model, lm.tokenizer, PROMPTS, greedy)
    config = DDSCConfig(layers="0,2,4", toxic_layer=3, contrast_weight=0.0, decode=greedy)
    ours = generate(lm.model, lm.tokenizer, PROMPTS, config)
    assert ours.token_ids == plain.token_ids
    # With a head that keeps every token (alpha tiny) it is plain sampling too, same seed.
    sampled = DecodeConfig(max_new_tokens=8, top_p=0.9, seed=5)
    plain = decode(lm.model, lm.tokenizer, PROMPTS, sampled)
    config = config.model_copy(update={"alpha": 1e-30, "decode": sampled})
    ours = generate(lm.model, lm.tokenizer, PROMPTS, config)
    assert ours.token_ids == plain.token_ids


def test_weight_scales_the_contrast_and_temperature_divides_it(lm: Any) -> None:
    # score(w, tau) = (log p_E - w * log q_B) / tau on the head: linear in w, scaled by 1/tau.
    _, _, _, outputs, logits = reference_step(lm, PROMPTS, [0, 1, 2, 4], 3)
    scores = {}
    for weight, tau in ((0.0, 1.0), (1.0, 1.0), (2.5, 1.0), (1.0, 0.5)):
        config = DDSCConfig(
            layers="0,1,2,4", toxic_layer=3, contrast_weight=weight, contrast_temperature=tau
        )
        scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, config), config)
        with torch.no_grad():
            scores[weight, tau] = scorer(logits, outputs)
    head = torch.isfinite(scores[0.0, 1.0])
    log_p = torch.log_softmax(logits.float(), -1)
    assert torch.allclose(scores[0.0, 1.0][head], log_p[head], atol=1e-5)
    contrast = scores[1.0, 1.0][head] - scores[0.0, 1.0][head]  # -log q_B
    assert contrast.abs().max() > 1e-2
    assert torch.allclose(
        scores[2.5, 1.0][head] - scores[0.0, 1.0][head], 2.5 * contrast, atol=1e-4
    )
    assert torch.allclose(scores[1.0, 0.5][head], 2 * scores[1.0, 1.0][head], atol=1e-5)


def test_safety_only_contrasts_the_toxic_and_safe_layers_alone(lm: Any) -> None:
    # safety_only: log q_B = log_softmax over the head of z_T - z_S (no z_H).
    _, _, _, outputs, logits = reference_step(lm, PROMPTS, [0, 1, 2, 4], 3)
    config = DDSCConfig(layers="0,1,2,4", toxic_layer=3, safety_only=True)
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, config), config)
    with torch.no_grad():
        ours = scorer(logits, outputs)
        rows = scorer.head_logits(outputs)
    head = torch.isfinite(ours)
    batch = torch.arange(logits.shape[0])
    s = torch.stack(scorer.s_steps)[-1]  # the safe layer (a hidden-state index) of each row
    safe_row = torch.tensor([list(scorer.plan.rows).index(int(x)) for x in s])
    toxic = rows[:, scorer.plan.rows.index(3)]
    base = (toxic - rows[batch, safe_row]).float().masked_fill(~head, float("-inf"))
    expected = torch.log_softmax(logits.float(), -1) - torch.log_softmax(base, -1)
    assert torch.allclose(ours[head], expected[head], atol=1e-4)
    full = DDSCConfig(layers="0,1,2,4", toxic_layer=3)
    reference = DDSCStepScorer(lm.model, plan_layers(lm.model, full), full)
    with torch.no_grad():
        assert not torch.allclose(reference(logits, outputs)[head], ours[head], atol=1e-3)


def test_tiny_contrast_temperature_samples_the_greedy_path(lm: Any) -> None:
    greedy = DDSCConfig(
        layers="all", toxic_layer=2, decode=DecodeConfig(max_new_tokens=6, greedy=True)
    )
    sampled = greedy.model_copy(
        update={
            "contrast_temperature": 1e-6,
            "decode": DecodeConfig(max_new_tokens=6, top_p=1.0, seed=1),
        }
    )
    a = generate(lm.model, lm.tokenizer, PROMPTS, greedy)
    b = generate(lm.model, lm.tokenizer, PROMPTS, sampled)
    assert a.token_ids == b.token_ids


def test_trace_has_one_entry_per_token_within_the_candidates(lm: Any) -> None:
    config = DDSCConfig(
        layers="0,1,2,4", toxic_layer=3, decode=DecodeConfig(max_new_tokens=7, top_p=1.0)
    )
    result = generate(lm.model, lm.tokenizer, PROMPTS, config)
    for ids, stopped, trace in zip(result.token_ids, result.stopped, result.layers, strict=True):
        assert len(trace) == len(ids) + (1 if stopped == "eos" else 0)
        for h, s in trace:
            assert h in (0, 1, 2)
            assert s in (1, 2)  # the first candidate is never the safe layer


def test_default_profile_does_not_fit_the_tiny_model(lm: Any) -> None:
    from detox_core.errors import DetoxError

    with pytest.raises(DetoxError) as exc:
        generate(lm.model, lm.tokenizer, PROMPTS, DDSCConfig(layers="all"))
    assert "num layers 30 in the profile, 4 in this model" in str(exc.value)
    assert "locate_toxic_layer" in str(exc.value)


def test_apc_head_size_follows_alpha(lm: Any) -> None:
    _, _, _, outputs, logits = reference_step(lm, PROMPTS, [0, 1, 2, 4], 3)
    sizes = []
    for alpha in (0.9, 0.1, 1e-30):
        config = DDSCConfig(layers="0,1,2,4", toxic_layer=3, alpha=alpha)
        scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, config), config)
        with torch.no_grad():
            sizes.append(int(torch.isfinite(scorer(logits, outputs)).sum()))
        p = torch.softmax(logits.float(), -1)
        assert sizes[-1] == int((p >= alpha * p.max(-1, keepdim=True).values).sum())
    assert sizes[0] <= sizes[1] <= sizes[2] == logits.numel()


def test_head_logits_reuse_one_buffer_with_the_plain_linear_values(lm: Any) -> None:
    _, _, _, outputs, _ = reference_step(lm, PROMPTS, [0, 1, 2, 4], 3)
    config = DDSCConfig(layers="0,1,2,4", toxic_layer=3)
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, config), config)
    states = outputs.hidden_states
    stacked = torch.stack([states[i][:, -1] for i in scorer.plan.rows], dim=1)
    head = lm.model.get_output_embeddings()
    with torch.inference_mode():
        first = scorer.head_logits(outputs)
        expected = torch.nn.functional.linear(stacked, head.weight, head.bias)
        assert torch.equal(first, expected)  # bit for bit what the plain linear gives
        again = scorer.head_logits(outputs)
        assert again.data_ptr() == first.data_ptr()  # no fresh [B, R, V] tensor per step
    with torch.no_grad():
        assert torch.equal(scorer.head_logits(outputs), expected)  # outside inference mode too
    tracked = scorer.head_logits(outputs)  # autograd on: a plain linear, not the buffer
    assert tracked.requires_grad and torch.equal(tracked.detach(), expected)


def test_contrast_gate_contrasts_only_rows_where_toxic_and_safe_disagree(lm: Any) -> None:
    # contrast_gate g: rows with V * JSD'(T, S) > g keep the contrast, the others get log p_E.
    _, _, _, outputs, logits = reference_step(lm, PROMPTS, [0, 1, 2, 4], 3)
    full = DDSCConfig(layers="0,1,2,4", toxic_layer=3)
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, full), full)
    with torch.no_grad():
        contrasted = scorer(logits, outputs).clone()
        rows = scorer.head_logits(outputs)
    toxic = rows[:, scorer.plan.rows.index(3)]
    s = torch.stack(scorer.s_steps)[-1]
    safe = rows[torch.arange(len(PROMPTS)), [list(scorer.plan.rows).index(int(x)) for x in s]]
    vocab = logits.shape[-1]
    gaps = [vocab * _jsd_prime(toxic[b], safe[b]) for b in range(len(PROMPTS))]
    low, mid = sorted(gaps)[:2]
    assert mid > 1.5 * low  # the rows disagree by clearly different amounts
    gate = (low + mid) / 2  # the least disagreeing row is not contrasted, the others are
    plain = torch.log_softmax(logits.float(), -1)
    gated = full.model_copy(update={"contrast_gate": gate})
    scorer = DDSCStepScorer(lm.model, plan_layers(lm.model, gated), gated)
    with torch.no_grad():
        ours = scorer(logits, outputs)
    for b, gap in enumerate(gaps):
        expected = contrasted[b] if gap > gate else plain[b]
        assert torch.allclose(ours[b], expected, atol=1e-5), (b, gap, gate)
    assert any(g <= gate for g in gaps) and any(g > gate for g in gaps)


def test_huge_contrast_gate_is_plain_sampling(lm: Any) -> None:
    sampled = DecodeConfig(max_new_tokens=8, top_p=0.9, seed=5)
    plain = decode(lm.model, lm.tokenizer, PROMPTS, sampled)
    config = DDSCConfig(layers="0,2,4", toxic_layer=3, contrast_gate=1e9, decode=sampled)
    assert generate(lm.model, lm.tokenizer, PROMPTS, config).token_ids == plain.token_ids
    contrasted = generate(
        lm.model, lm.tokenizer, PROMPTS, config.model_copy(update={"contrast_gate": 0.0})
    )
    assert contrasted.token_ids != plain.token_ids
