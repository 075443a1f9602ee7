"""The one registry of decoding methods: ``vanilla``, ``ddsc``, ``dola``, ``cmd``, ``cmd+ddsc``,
``dinm``, ``dinm+ddsc``.

Every command that decodes with a method builds it here, from one nested config
(``MethodSettings``: the sampling settings, ``DDSCConfig``, the CMD adapter, ``DINMConfig``), so
every command exposes the same knobs under the same names and a new method is one registration
(``register``). A method turns ``(model, texts, decode settings)`` into texts and per-row extras;
DINM's weight edit needs a SafeEdit instance, so the SafeEdit runner applies it around the
method's decoder (``Method.uses_dinm``). detox_ddsc and detox_cmd are imported when a method runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detox_cmd.chain import GENERATION_TEMPERATURE
from detox_core.decoding import DecodeConfig, decode
from detox_core.errors import DetoxError
from detox_core.generation import BatchDecoder
from detox_core.models import LoadedModel, ModelOptions, load_model, resolve_model_source
from detox_ddsc.config import DDSCConfig
from detox_ddsc.dinm import DINMConfig

LAYERS_KEY = "layers"  # extras["layers"]: the (H, S) hidden-state indices of each decoding step
RTP_TASK = "rtp"
SAFEEDIT_TASK = "safeedit"


class CmdSettings(BaseModel):
    """The CMD model: a trained adapter folder (``detox cmd train``), the chain budget, and
    whether the template's fixed text is written for the model (``guided``) or by it."""

    model_config = ConfigDict(frozen=True)

    adapter: str | None = None
    max_chain_tokens: int | None = Field(None, ge=2)
    guided: bool = True
    # Guided chains only: end-of-sequence is banned inside a slot and the generation, so each
    # ends at its closing '#' (or its budget).
    close_slots: bool = True
    # The generation part's sampling temperature (None: the decode temperature).
    generation_temperature: float | None = Field(GENERATION_TEMPERATURE, gt=0)


class MethodSettings(BaseModel):
    """The nested configs every method is built from.

    ``decode`` holds the sampling settings of every method; ``ddsc.decode`` always equals it
    (it is set from ``decode`` on validation), so DDSC and plain decoding sample alike.
    """

    model_config = ConfigDict(frozen=True)

    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    ddsc: DDSCConfig = Field(default_factory=DDSCConfig)
    cmd: CmdSettings = Field(default_factory=CmdSettings)
    dinm: DINMConfig = Field(default_factory=DINMConfig)

    @model_validator(mode="after")
    def _share_decode(self) -> MethodSettings:
        if self.ddsc.decode != self.decode:
            object.__setattr__(self, "ddsc", self.ddsc.model_copy(update={"decode": self.decode}))
        return self

    def with_decode(self, **update: Any) -> MethodSettings:
        """A copy with some decode settings changed (e.g. the seed of one chunk)."""
        return self.model_copy(
            update={
                "decode": self.decode.model_copy(update=update),
                "ddsc": self.ddsc.model_copy(
                    update={"decode": self.decode.model_copy(update=update)}
                ),
            }
        )


@dataclass(frozen=True)
class DecodeResult:
    """What a method's decoder returns for a batch of inputs."""

    texts: list[str]
    stopped: list[str]
    extras: list[dict[str, Any]]


# (model, input texts, settings with this batch's decode settings, toxic layer override or None)
Decoder = Callable[[LoadedModel, list[str], MethodSettings, int | None], DecodeResult]


@dataclass(frozen=True)
class Method:
    """One registered method."""

    name: str
    summary: str
    decoder: Decoder
    uses_ddsc: bool = False
    uses_dinm: bool = False
    uses_adapter: bool = False
    tasks: tuple[str, ...] = (RTP_TASK, SAFEEDIT_TASK)


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (a name can be registered once)."""
    if method.name in _REGISTRY:
        raise ValueError(f"method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def method_names(task: str | None = None) -> tuple[str, ...]:
    """The registered names (of one task's methods when ``task`` is given)."""
    return tuple(n for n, m in _REGISTRY.items() if task is None or task in m.tasks)


def get_method(name: str, task: str | None = None) -> Method:
    """The method called ``name``; a one-line error for an unknown or unsuited name."""
    names = method_names(task)
    if name not in names:
        where = f" for {task}" if task else ""
        raise DetoxError(f"unknown method {name!r}{where}", f"use one of {', '.join(names)}")
    return _REGISTRY[name]


def parse_methods(spec: str, task: str | None = None) -> tuple[str, ...]:
    """``vanilla,ddsc`` -> ``("vanilla", "ddsc")``; unknown or repeated names are an error."""
    names = tuple(part.strip().lower() for part in spec.split(",") if part.strip())
    if not names:
        raise DetoxError(f"no method in {spec!r}", f"use any of {', '.join(method_names(task))}")
    for name in names:
        get_method(name, task)
    if len(set(names)) != len(names):
        raise DetoxError(f"a method is listed twice in {spec!r}", "list each method once")
    return names


# ---------------------------------------------------------------------------------------------
# The decoders


def _ddsc_config(settings: MethodSettings, toxic_layer: int | None, mode: str) -> DDSCConfig:
    update: dict[str, Any] = {"mode": mode}
    if toxic_layer is not None:
        update.update(toxic_layer=toxic_layer, profile=None)
    return settings.ddsc.model_copy(update=update)


def _plain(lm: LoadedModel, texts: list[str], s: MethodSettings, _: int | None) -> DecodeResult:
    out = decode(lm.model, lm.tokenizer, texts, s.decode)
    return DecodeResult(out.texts, out.stopped, [{} for _ in texts])


def _contrast(mode: str) -> Decoder:
    def run(lm: LoadedModel, texts: list[str], s: MethodSettings, t: int | None) -> DecodeResult:
        from detox_ddsc import generate

        out = generate(lm.model, lm.tokenizer, texts, _ddsc_config(s, t, mode))
        extras = [{LAYERS_KEY: [list(step) for step in steps]} for steps in out.layers]
        return DecodeResult(out.texts, out.stopped, extras)

    return run


def _chain(with_ddsc: bool) -> Decoder:
    def run(lm: LoadedModel, texts: list[str], s: MethodSettings, t: int | None) -> DecodeResult:
        from detox_cmd.inference import generate_chain

        ddsc = _ddsc_config(s, t, "ddsc") if with_ddsc else None
        chains = generate_chain(
            lm.model,
            lm.tokenizer,
            texts,
            s.decode,
            ddsc=ddsc,
            max_chain_tokens=s.cmd.max_chain_tokens,
            guided=s.cmd.guided,
            close_slots=s.cmd.close_slots,
            generation_temperature=s.cmd.generation_temperature,
        )
        extras = [{"chain": c.chain, "malformed": c.malformed} for c in chains]
        stopped = ["malformed" if c.malformed else "stop" for c in chains]
        return DecodeResult([c.generation for c in chains], stopped, extras)

    return run


register(Method("vanilla", "plain decoding (the baseline)", _plain))
register(Method("ddsc", "DDSC layer contrast, z_H + z_T - z_S", _contrast("ddsc"), uses_ddsc=True))
register(Method("dola", "DoLa layer contrast, z_H", _contrast("dola"), uses_ddsc=True))
register(
    Method(
        "cmd",
        "the CMD adapter writes the chain",
        _chain(False),
        uses_adapter=True,
        tasks=(RTP_TASK,),
    )
)
register(
    Method(
        "cmd+ddsc",
        "CMD chain, its generation part decoded with DDSC",
        _chain(True),
        uses_ddsc=True,
        uses_adapter=True,
        tasks=(RTP_TASK,),
    )
)
register(
    Method(
        "dinm",
        "DINM weight edit, then plain decoding",
        _plain,
        uses_dinm=True,
        tasks=(SAFEEDIT_TASK,),
    )
)
register(
    Method(
        "dinm+ddsc",
        "DINM weight edit, then DDSC",
        _contrast("ddsc"),
        uses_ddsc=True,
        uses_dinm=True,
        tasks=(SAFEEDIT_TASK,),
    )
)


def batch_decoder(method: Method, lm: LoadedModel, settings: MethodSettings) -> BatchDecoder:
    """``run_sampling``'s decoder for one method: each chunk with its own seed; the extras
    hold the stop reason and whatever the method reports (layers, chains)."""

    def decode_batch(texts: list[str], seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        out = method.decoder(lm, texts, settings.with_decode(seed=seed), None)
        extras = [{"stopped": s, **e} for s, e in zip(out.stopped, out.extras, strict=True)]
        return out.texts, extras

    return decode_batch


# ---------------------------------------------------------------------------------------------
# Models and checks


def check_methods(methods: Sequence[str], model: str, settings: MethodSettings) -> None:
    """Fail early (one line, before any weights are loaded) when a method lacks what it needs or
    the DDSC layers do not fit the model it decodes with."""
    chosen = [get_method(m) for m in methods]
    adapter_methods = [m.name for m in chosen if m.uses_adapter]
    ddsc_models: list[str] = []
    if any(m.uses_ddsc and not m.uses_adapter for m in chosen):
        ddsc_models.append(model)
    if adapter_methods:
        if settings.cmd.adapter is None:
            raise DetoxError(
                f"method {adapter_methods[0]} needs a trained CMD adapter",
                "give the adapter folder of a CMD training run, or drop the cmd methods",
            )
        from detox_cmd.inference import find_adapter

        _, info = find_adapter(Path(settings.cmd.adapter))  # a folder without one fails here
        if any(m.uses_ddsc and m.uses_adapter for m in chosen):
            ddsc_models.append(info.base_model)
    for spec in ddsc_models:
        check_ddsc_layers(spec, settings.ddsc)


def check_ddsc_layers(model_spec: str, config: DDSCConfig) -> None:
    """Validate the DDSC layers and toxic layer against a model's config (no weights loaded)."""
    from transformers import AutoConfig

    from detox_ddsc import plan_layers

    try:
        hf_config = AutoConfig.from_pretrained(resolve_model_source(model_spec))
    except (OSError, ValueError):
        return  # no readable config (e.g. an uncached hub id): checked again when decoding
    plan_layers(hf_config, config)


class MethodModels:
    """Loads the base model and the CMD model once, when a method first needs them."""

    def __init__(self, model: str, settings: MethodSettings, options: ModelOptions) -> None:
        self.model = model
        self.settings = settings
        self.options = options
        self._base: LoadedModel | None = None
        self._cmd: LoadedModel | None = None

    def base(self) -> LoadedModel:
        """The model named by ``--model``."""
        if self._base is None:
            self._base = load_model(self.model, self.options)
        return self._base

    def cmd(self) -> LoadedModel:
        """The CMD-trained model (``--adapter``)."""
        if self._cmd is None:
            from detox_cmd.inference import load_cmd_model

            if self.settings.cmd.adapter is None:
                raise DetoxError("the cmd methods need a CMD adapter", "give its folder")
            self._cmd = load_cmd_model(Path(self.settings.cmd.adapter), self.options)
        return self._cmd

    def for_method(self, name: str) -> LoadedModel:
        """The model a method decodes with."""
        return self.cmd() if get_method(name).uses_adapter else self.base()

    def label(self, name: str) -> str:
        """The ``model`` written into a method's records."""
        if get_method(name).uses_adapter:
            return f"adapter:{self.settings.cmd.adapter}"
        return self.model
