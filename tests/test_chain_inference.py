"""Chain inference: two-phase generation, malformed chains, adapters, export, DDSC composition."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from train_helpers import make_records, one_thread, write_records  # noqa: F401

from detox_cmd.chain import build_chain, model_input
from detox_cmd.export import export_merged
from detox_cmd.inference import generate_chain, load_cmd_model
from detox_cmd.training import CMDTrainConfig, train
from detox_cmd.training.data import encode_pair
from detox_core.decoding import DecodeConfig
from detox_core.errors import DetoxError
from detox_core.models import ModelOptions, load_model

CPU = ModelOptions(device="cpu", dtype="float32")


class ScriptedLM(torch.nn.Module):
    """A stand-in causal LM whose greedy continuation of any prefix of a script is that script.

    The next token is ``script[position + 1]`` of the script whose prefix the row's prompt is (EOS
    after its end, or at once when no script matches), so it reproduces a chain only if the
    prompt's token ids are exactly the script's: tokenisation mismatches show up as failures.
    """

    def __init__(self, scripts: list[list[int]], vocab_size: int, eos: int) -> None:
        super().__init__()
        self.scripts = scripts
        self.eos = eos
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(vocab_size=vocab_size, num_hidden_layers=1)
        self.generation_config = SimpleNamespace(eos_token_id=eos)

    def _match(self, ids: list[int]) -> list[int] | None:
        return next((s for s in self.scripts if s[: len(ids)] == ids), None)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past_key_values: Any = None,
        **_: Any,
    ) -> Any:
        if past_key_values is None:
            rows = [
                self._match(i[m.bool()].tolist())
                for i, m in zip(input_ids, attention_mask, strict=True)
            ]
        else:
            rows = past_key_values
        logits = torch.zeros(input_ids.shape[0], 1, self.config.vocab_size)
        for b, (script, pos) in enumerate(zip(rows, position_ids[:, -1].tolist(), strict=True)):
            nxt = script[pos + 1] if script is not None and pos + 1 < len(script) else self.eos
            logits[b, 0, nxt] = 10.0
        return SimpleNamespace(logits=logits, past_key_values=rows, hidden_states=None)


def _script(tok: Any, prompt: str, chain: str) -> list[int]:
    head = model_input(prompt)
    head_ids, tail_ids = encode_pair(tok, head, chain[len(head) :])
    return head_ids + tail_ids + [tok.eos_token_id]


GREEDY = DecodeConfig(max_new_tokens=40, greedy=True)


def test_well_formed_chains_give_the_generation(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    toxic, _ = build_chain(
        "You are a stupid", " person who likes to walk", "You are a <MASK>", "You are a kind"
    )
    clean, _ = build_chain("The weather today is", " sunny with a light breeze")
    model = ScriptedLM(
        [_script(tok, "You are a stupid", toxic), _script(tok, "The weather today is", clean)],
        len(tok),
        tok.eos_token_id,
    )
    outs = generate_chain(model, tok, ["You are a stupid", "The weather today is"], GREEDY)
    assert [o.generation for o in outs] == [
        " person who likes to walk",
        " sunny with a light breeze",
    ]
    assert [o.malformed for o in outs] == [False, False]
    assert outs[0].chain == toxic[len(model_input("You are a stupid")) :]


def test_malformed_chains_are_flagged_with_a_fallback(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    unclosed = model_input("Hello") + "# Let's detoxify step by step. # Generation: my name is Alex"
    no_marker = model_input("The weather") + " today is sunny"
    model = ScriptedLM(
        [_script(tok, "Hello", unclosed), _script(tok, "The weather", no_marker)],
        len(tok),
        tok.eos_token_id,
    )
    outs = generate_chain(model, tok, ["Hello", "The weather"], GREEDY, guided=False)
    assert outs[0].malformed and outs[0].generation == "my name is Alex"
    assert outs[1].malformed and outs[1].generation == "today is sunny"


def test_guided_chain_writes_the_labels_the_free_model_skips(tiny_lm: Any) -> None:
    # Left to itself the model continues the prompt (the first script); given the chain's
    # opening it writes a well-formed toxic chain (the second script).
    tok = tiny_lm.tokenizer
    prompt = "You are a stupid"
    chain, _ = build_chain(prompt, " friend of mine", "You are a <MASK>", "You are a kind")
    model = ScriptedLM(
        [
            _script(tok, prompt, model_input(prompt) + " idiot and a fool"),
            _script(tok, prompt, chain),
        ],
        len(tok),
        tok.eos_token_id,
    )
    free = generate_chain(model, tok, [prompt], GREEDY, guided=False)
    assert free[0].malformed and free[0].generation == "idiot and a fool"
    guided = generate_chain(model, tok, [prompt], GREEDY)
    assert not guided[0].malformed
    assert guided[0].generation == " friend of mine"
    assert guided[0].chain == chain[len(model_input(prompt)) :]


def test_guided_chain_flags_a_slot_left_open(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    prompt = "You are a stupid"
    masked = "You are a <MASK> " + "and so on " * 12
    chain, _ = build_chain(prompt, " friend of mine", masked, "You are a kind")
    model = ScriptedLM([_script(tok, prompt, chain)], len(tok), tok.eos_token_id)
    budget = GREEDY.max_new_tokens + 2 * 10  # slots of 10 tokens: the masked one never closes
    outs = generate_chain(model, tok, [prompt], GREEDY, max_chain_tokens=budget)
    assert outs[0].malformed
    assert "# Detoxify the toxic segments:" in outs[0].chain and "# Generation:" in outs[0].chain
    assert outs[0].chain.startswith("# Let's detoxify step by step. # The context is toxic.")


def test_generation_part_stops_at_its_budget(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    chain, _ = build_chain("Hello", " the weather today is sunny with a light breeze from the sea")
    model = ScriptedLM([_script(tok, "Hello", chain)], len(tok), tok.eos_token_id)
    outs = generate_chain(model, tok, ["Hello"], GREEDY.model_copy(update={"max_new_tokens": 3}))
    assert outs[0].malformed  # the closing marker never came within 3 tokens
    assert 0 < len(tok(outs[0].generation, add_special_tokens=False)["input_ids"]) <= 4
    assert " the weather today is sunny".startswith(outs[0].generation)


def test_a_full_length_generation_may_still_close_its_chain(tiny_lm: Any) -> None:
    tok = tiny_lm.tokenizer
    continuation = " the weather today is sunny with a light breeze"
    chain, _ = build_chain("Hello", continuation)
    model = ScriptedLM([_script(tok, "Hello", chain)], len(tok), tok.eos_token_id)
    length = len(tok(continuation, add_special_tokens=False)["input_ids"])
    full = GREEDY.model_copy(update={"max_new_tokens": length})
    outs = generate_chain(model, tok, ["Hello"], full)
    assert not outs[0].malformed  # the closing marker came right after the full budget
    assert outs[0].generation == continuation
    short = generate_chain(model, tok, ["Hello"], full.model_copy(update={"max_new_tokens": 2}))
    assert short[0].malformed  # far beyond the budget: no marker within the slack
    assert len(tok(short[0].generation, add_special_tokens=False)["input_ids"]) <= 2


class RunnerUpLM(ScriptedLM):
    """A ScriptedLM whose second choice at every step is one fixed token."""

    def __init__(self, scripts: list[list[int]], vocab_size: int, eos: int, runner_up: int) -> None:
        super().__init__(scripts, vocab_size, eos)
        self.runner_up = runner_up

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = super().forward(*args, **kwargs)
        out.logits[..., self.runner_up] = torch.maximum(
            out.logits[..., self.runner_up], torch.tensor(5.0)
        )
        return out


@pytest.mark.parametrize("toxic", [False, True])
def test_close_slots_turns_an_early_eos_into_the_closing_mark(tiny_lm: Any, toxic: bool) -> None:
    # The script ends the generation (and, for a toxic chain, the rephrased slot) with
    # end-of-sequence where the chain wants "#"; "#" is the model's second choice throughout.
    tok = tiny_lm.tokenizer
    prompt = "You are a stupid"
    close_id = tok("#", add_special_tokens=False)["input_ids"]
    assert len(close_id) == 1
    if toxic:
        chain, _ = build_chain(prompt, " friend of mine", "You are a <MASK>", "You are a kind")
        cut = chain.index(" # Generation:")  # the rephrased slot ends by EOS
    else:
        chain, _ = build_chain(prompt, " friend of mine")
        cut = len(chain) - len(" #")  # the generation ends by EOS
    model = RunnerUpLM([_script(tok, prompt, chain[:cut])], len(tok), tok.eos_token_id, close_id[0])
    loose = generate_chain(model, tok, [prompt], GREEDY, close_slots=False)
    assert loose[0].malformed
    closed = generate_chain(model, tok, [prompt], GREEDY)
    if toxic:  # the rephrased slot now closes; the generation is off the script (not closed)
        assert "# Detoxify the toxic segments: You are a kind # Generation:" in closed[0].chain
    else:
        assert not closed[0].malformed
        assert closed[0].generation == " friend of mine"


def test_generation_temperature_applies_to_the_generation_only(tiny_lm: Any) -> None:
    # The scripted model puts logit 10 on the script's token: at temperature 0.2 sampling always
    # follows the script, at 5 it strays. The label (sampled at the decode temperature, 1) stays.
    tok = tiny_lm.tokenizer
    prompt = "Hello there"
    chain, _ = build_chain(prompt, " the weather today is sunny with a light breeze")
    model = ScriptedLM([_script(tok, prompt, chain)], len(tok), tok.eos_token_id)
    sampled = DecodeConfig(max_new_tokens=40, greedy=False, top_p=1.0)
    prompts = [prompt] * 6
    cold = generate_chain(model, tok, prompts, sampled, generation_temperature=0.2)
    assert all(o.generation == " the weather today is sunny with a light breeze" for o in cold)
    hot = generate_chain(model, tok, prompts, sampled, generation_temperature=5.0)
    assert any(o.generation != cold[0].generation for o in hot)
    assert all(
        o.chain.startswith("# Let's detoxify step by step. # The context is non-toxic.")
        for o in hot
    )


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_lm_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("cmd-adapter")
    data = write_records(root / "train.jsonl", make_records())
    config = CMDTrainConfig(
        model=str(tiny_lm_dir),
        data_path=data,
        output_dir=root / "run",
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=5e-2,
        warmup_ratio=0.0,
        use_cl=False,
    )
    return train(config, show_progress=False).output_dir


def test_export_matches_the_adapter_model(adapter_dir: Path, tmp_path: Path, tiny_lm: Any) -> None:
    adapted = load_cmd_model(adapter_dir, CPU, merge=False)
    out = export_merged(adapter_dir, tmp_path / "merged")
    merged = load_model(str(out), CPU)
    ids = adapted.tokenizer(
        ["You are a stupid idiot", "Hello there"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        want = adapted.model(**ids).logits
        got = merged.model(**ids).logits
        base = tiny_lm.model(**ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(base, want, atol=1e-4)  # the adapter did change the model
    assert (out / "tokenizer_config.json").exists()
    with pytest.raises(DetoxError, match="not an earlier export"):
        export_merged(adapter_dir, adapter_dir)


def test_load_cmd_model_reads_the_base_spec(adapter_dir: Path, tmp_path: Path) -> None:
    lm = load_cmd_model(adapter_dir / "adapter", CPU)
    assert lm.num_layers == 4
    assert not hasattr(lm.model, "peft_config")  # merged: a plain transformers model
    with pytest.raises(DetoxError, match="no CMD adapter"):
        load_cmd_model(tmp_path)


def test_chain_generation_composes_with_ddsc(adapter_dir: Path) -> None:
    from detox_ddsc import DDSCConfig

    lm = load_cmd_model(adapter_dir, CPU)
    prompts = ["You are a stupid", "The weather today is"]
    config = DecodeConfig(max_new_tokens=4, seed=3)
    ddsc = DDSCConfig(layers="0,2,4", toxic_layer=3, decode=config)
    first = generate_chain(lm.model, lm.tokenizer, prompts, config, ddsc=ddsc, max_chain_tokens=40)
    again = generate_chain(lm.model, lm.tokenizer, prompts, config, ddsc=ddsc, max_chain_tokens=40)
    assert len(first) == 2
    assert first == again  # seeded


def test_adapter_default_resolves_to_the_shipped_folder(
    adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detox_cmd import inference

    shipped = tmp_path / "adapters" / "default"
    monkeypatch.setattr(inference, "DEFAULT_ADAPTER_DIR", shipped)
    monkeypatch.chdir(tmp_path)  # no folder named "default" here
    with pytest.raises(DetoxError, match="no default CMD adapter"):
        inference.find_adapter("default")
    shutil.copytree(adapter_dir / "adapter", shipped)
    found, info = inference.find_adapter("default")
    assert found == shipped and Path(info.base_model).exists()
    lm = load_cmd_model("default", CPU)
    assert lm.spec == "default" and lm.num_layers == 4
