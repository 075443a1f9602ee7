"""CMD inference: load a trained adapter and run the detoxification chain (METHODS §2.6).

The model is given ``# Text: {prompt} `` and writes the rest of the chain. Generation runs in
two phases so that each part has its own budget and stop:

1. the reasoning part, up to the ``# Generation:`` marker. *Guided* (the default,
   ``guided_chain``): the template's fixed text is written for the model, which chooses the
   label and writes the masked and rephrased slots (each up to ``#``, budget: half of the
   chain budget minus the generation budget; with ``close_slots``, the default, a slot cannot
   end by end-of-sequence, only at ``#`` or its budget). *Free* (the paper's inference,
   ``guided=False``): the model writes everything (budget: the chain budget minus the
   generation budget);
2. the generation part, stopped at the closing ``#`` (the template writes `` #``), with
   ``CLOSING_SLACK_TOKENS`` beyond ``max_new_tokens`` so that a continuation of full length can
   still close its chain; the generation kept is its first ``max_new_tokens`` tokens. This phase
   can use DDSC decoding, so CMD and DDSC compose.

In both phases the ``# Text: {prompt} `` input is tokenised on its own, exactly as in training.
A malformed chain (no ``# Generation:`` marker, a slot or the generation not closed within its
budget) falls back to the generated tail and is flagged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from detox_cmd.chain import GENERATION_MARKER, GENERATION_TEMPERATURE, TOXIC_TEMPLATE, model_input
from detox_cmd.guided_chain import SLOT_END, guided_reasoning
from detox_cmd.training.data import SplitInputTokenizer
from detox_cmd.training.records import TrainRunInfo
from detox_core.decoding import DecodeConfig, decode
from detox_core.errors import DetoxError
from detox_core.io import read_json_model
from detox_core.models import LoadedModel, ModelOptions, load_model

if TYPE_CHECKING:
    from detox_ddsc import DDSCConfig

CHAIN_SLACK_TOKENS = 16
# Tokens the generation phase may run past ``max_new_tokens`` to write the closing `` #``: the
# chains are trained on continuations of the full generation length, so without them a
# well-formed chain of full length would be cut before its marker and counted malformed.
CLOSING_SLACK_TOKENS = 4
RUN_INFO_FILE = "train_config.json"
# Offset between the seeds of the two phases, so their random draws are unrelated.
PHASE_SEED_OFFSET = 1 << 32
# ``--adapter default``: the adapter shipped in this package (trained by the CMD recipe on the
# default model; see its README.md for the command that reproduces it).
DEFAULT_ADAPTER = "default"
DEFAULT_ADAPTER_DIR = Path(__file__).parent / "adapters" / "default"


class ChainOutput(BaseModel):
    """One generated chain: the continuation, the chain text after the input, and a flag."""

    generation: str
    chain: str
    malformed: bool


def parse_chain(chain: str) -> ChainOutput:
    """Read the continuation out of a generated chain (the text after ``# Text: {prompt} ``).

    The continuation is the text after the first ``# Generation:`` (minus the template's one
    separating space) up to the closing ``#`` (the template's `` #``; its space is dropped too).
    Without the marker, the whole text is the fallback; without the closing ``#``, everything
    after ``# Generation:``; both are flagged ``malformed``.
    """
    start = chain.find(GENERATION_MARKER)
    if start < 0:
        return ChainOutput(generation=chain.strip(), chain=chain, malformed=True)
    tail = chain[start + len(GENERATION_MARKER) :]
    end = tail.find(SLOT_END)
    malformed = end < 0
    body = tail if malformed else tail[:end].removesuffix(" ")
    if body.startswith(" "):
        body = body[1:]
    return ChainOutput(generation=body, chain=chain, malformed=malformed)


def resolve_adapter(path: str | Path) -> Path:
    """``default`` (when no such folder exists here) is the shipped adapter; else the path."""
    if str(path) == DEFAULT_ADAPTER and not Path(DEFAULT_ADAPTER).exists():
        if not (DEFAULT_ADAPTER_DIR / "adapter_config.json").exists():
            raise DetoxError(
                "this detox-cmd ships no default CMD adapter",
                "train one with the CMD recipe and pass its folder as the adapter",
            )
        return DEFAULT_ADAPTER_DIR
    return Path(path).expanduser()


def find_adapter(path: str | Path) -> tuple[Path, TrainRunInfo]:
    """The adapter folder inside a training output (or the folder itself, or ``default``: the
    shipped one) and its run info."""
    path = resolve_adapter(path)
    adapter = path / "adapter" if (path / "adapter" / "adapter_config.json").exists() else path
    if not (adapter / "adapter_config.json").exists():
        raise DetoxError(
            f"no CMD adapter found in {path}",
            "pass a CMD training output folder (or its adapter/ folder)",
        )
    for info_path in (adapter / RUN_INFO_FILE, adapter.parent / RUN_INFO_FILE):
        if info_path.exists():
            info = read_json_model(info_path, TrainRunInfo, "CMD training record")
            return adapter, info
    raise DetoxError(
        f"{adapter} has no {RUN_INFO_FILE} naming its base model",
        "use an adapter written by the CMD trainer",
    )


def load_cmd_model(
    adapter_dir: str | Path, options: ModelOptions | None = None, merge: bool = True
) -> LoadedModel:
    """Load the adapter's base model (from its ``train_config.json``) with the adapter applied.

    With ``merge`` (the default) the LoRA weights are merged into the base weights, giving a
    plain transformers model (faster, and usable by every decoder, DDSC included).
    """
    from peft import PeftModel

    adapter, info = find_adapter(adapter_dir)
    base = load_model(info.base_model, options)
    model = PeftModel.from_pretrained(base.model, str(adapter))
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=base.tokenizer,
        spec=str(adapter_dir),
        source=base.source,
        device=base.device,
        dtype=base.dtype,
    )


def chain_budget(tokenizer: Any, prompts: list[str], max_new_tokens: int) -> int:
    """Default budget of a whole chain: generation + 2 x the longest prompt (for the masked and
    rephrased copies) + the toxic template's own tokens + ``CHAIN_SLACK_TOKENS``."""
    longest = max(
        (len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts), default=0
    )
    template = TOXIC_TEMPLATE.format(prompt="", masked="", rephrased="", positive="")
    overhead = len(tokenizer(template, add_special_tokens=False)["input_ids"])
    return max_new_tokens + 2 * longest + overhead + CHAIN_SLACK_TOKENS


def _first_tokens(tokenizer: Any, text: str, count: int) -> str:
    """``text`` cut to its first ``count`` tokens (unchanged when it is no longer)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= count:
        return text
    return str(tokenizer.decode(ids[:count], skip_special_tokens=True))


def _decode_generation(
    model: Any,
    tokenizer: Any,
    contexts: list[str],
    config: DecodeConfig,
    ddsc: DDSCConfig | None,
) -> tuple[list[str], list[str]]:
    """Phase 2: the generation part, by plain or DDSC decoding: ``(texts, stop reasons)``."""
    if ddsc is None:
        result = decode(model, tokenizer, contexts, config)
        return result.texts, result.stopped
    from detox_ddsc import generate

    out = generate(model, tokenizer, contexts, ddsc.model_copy(update={"decode": config}))
    return out.texts, out.stopped


def generate_chain(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    decode_config: DecodeConfig,
    ddsc: DDSCConfig | None = None,
    max_chain_tokens: int | None = None,
    guided: bool = True,
    close_slots: bool = True,
    generation_temperature: float | None = GENERATION_TEMPERATURE,
) -> list[ChainOutput]:
    """Run the CMD chain for each prompt and return its continuation (see the module doc).

    ``decode_config.max_new_tokens`` is the budget of the generation part;
    ``max_chain_tokens`` that of the whole chain (default: ``chain_budget``). ``ddsc``, when
    given, decodes the generation part with DDSC (its own ``decode`` settings are replaced by
    ``decode_config``). ``guided`` writes the template's fixed text for the model (see
    ``guided_chain``); ``False`` lets the model write the whole chain, as in the paper.
    ``close_slots`` (guided only) bans end-of-sequence inside the slots and the generation, so
    that each ends at its closing ``#`` (or runs out of budget). ``generation_temperature``
    samples the generation part at that temperature (default ``GENERATION_TEMPERATURE``;
    ``None``: ``decode_config``'s); the label and the slots keep ``decode_config``'s.
    """
    if not prompts:
        return []
    budget = max_chain_tokens or chain_budget(tokenizer, prompts, decode_config.max_new_tokens)
    inputs = [model_input(p) for p in prompts]
    closed = [True] * len(prompts)
    fallbacks: dict[int, ChainOutput] = {}
    if guided:
        slot_tokens = max((budget - decode_config.max_new_tokens) // 2, 1)
        reasoning_texts, closed = guided_reasoning(
            model, tokenizer, inputs, decode_config, slot_tokens, close_slots
        )
    else:
        reasoning_texts, fallbacks = _free_reasoning(
            model, tokenizer, inputs, decode_config, budget
        )
    outputs = dict(fallbacks)
    pending = [i for i in range(len(prompts)) if i not in fallbacks]
    if pending:
        contexts = [inputs[i] + reasoning_texts[i] for i in pending]
        split = SplitInputTokenizer(
            tokenizer, {c: inputs[i] for c, i in zip(contexts, pending, strict=True)}
        )
        generation_tokens = decode_config.max_new_tokens + CLOSING_SLACK_TOKENS
        generation = decode_config.model_copy(
            update={
                "max_new_tokens": generation_tokens,
                "min_new_tokens": generation_tokens if guided and close_slots else 0,
                "temperature": generation_temperature or decode_config.temperature,
                "stop": (SLOT_END, *decode_config.stop),
                "seed": decode_config.seed + PHASE_SEED_OFFSET,
                "sync_every": min(decode_config.sync_every, 8),
            }
        )
        texts, reasons = _decode_generation(model, split, contexts, generation, ddsc)
        for i, text, reason in zip(pending, texts, reasons, strict=True):
            closing = SLOT_END if reason == "stop" else ""
            parsed = parse_chain(reasoning_texts[i] + text + closing)
            body = _first_tokens(tokenizer, parsed.generation, decode_config.max_new_tokens)
            malformed = parsed.malformed or not closed[i]
            outputs[i] = parsed.model_copy(update={"generation": body, "malformed": malformed})
    return [outputs[i] for i in range(len(prompts))]


def _free_reasoning(
    model: Any,
    tokenizer: Any,
    inputs: list[str],
    decode_config: DecodeConfig,
    budget: int,
) -> tuple[list[str], dict[int, ChainOutput]]:
    """Phase 1 of the free chain: the model writes up to ``# Generation:`` itself. Returns the
    reasoning texts (marker included) and the malformed outputs of the rows that never got there
    (they skip phase 2)."""
    reasoning = decode_config.model_copy(
        update={
            "max_new_tokens": max(budget - decode_config.max_new_tokens, 1),
            "stop": (GENERATION_MARKER,),
            "sync_every": min(decode_config.sync_every, 8),
        }
    )
    first = decode(model, tokenizer, inputs, reasoning)
    fallbacks: dict[int, ChainOutput] = {}
    for i, (text, reason) in enumerate(zip(first.texts, first.stopped, strict=True)):
        if reason != "stop":
            tail = _first_tokens(tokenizer, text, decode_config.max_new_tokens)
            fallbacks[i] = ChainOutput(generation=tail.strip(), chain=text, malformed=True)
    return [text + GENERATION_MARKER for text in first.texts], fallbacks
