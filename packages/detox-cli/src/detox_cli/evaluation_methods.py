"""The decoding methods an evaluation compares, by name: ``vanilla``, ``ddsc``, ``cmd``,
``cmd+ddsc``.

Each method becomes a ``BatchDecoder`` for ``detox_core.generation.run_sampling`` (texts and a
seed in, texts and per-row extras out), so every method samples the same prompts in the same
chunks with the same seeds. detox_ddsc and detox_cmd are imported only when a method needs them,
and each model is loaded once, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detox_core.decoding import DecodeConfig, decode
from detox_core.errors import DetoxError
from detox_core.evaluation.outputs import LAYERS_KEY
from detox_core.evaluation.settings import METHOD_NAMES, RtpSettings
from detox_core.generation import BatchDecoder
from detox_core.models import LoadedModel, ModelOptions, load_model, resolve_model_source


def parse_methods(spec: str) -> tuple[str, ...]:
    """``vanilla,ddsc`` -> ``("vanilla", "ddsc")``; unknown or repeated names are an error."""
    names = tuple(part.strip() for part in spec.split(",") if part.strip())
    unknown = [n for n in names if n not in METHOD_NAMES]
    if not names or unknown:
        raise DetoxError(
            f"unknown method(s) {', '.join(unknown) or repr(spec)}",
            f"use a comma-separated list of {', '.join(METHOD_NAMES)}",
        )
    if len(set(names)) != len(names):
        raise DetoxError(f"a method is listed twice in {spec!r}", "list each method once")
    return names


def check_method_inputs(settings: RtpSettings) -> None:
    """Fail early (one line, before any model is loaded) when a method lacks what it needs or
    the DDSC layers do not fit the model."""
    needs_adapter = [m for m in settings.methods if m.startswith("cmd")]
    if needs_adapter and settings.adapter is None:
        raise DetoxError(
            f"method {needs_adapter[0]} needs a trained CMD adapter",
            "pass --adapter DIR (written by `detox cmd train`) or drop cmd from --methods",
        )
    ddsc_models = [settings.model] if "ddsc" in settings.methods else []
    if needs_adapter and settings.adapter is not None:
        from detox_cmd.inference import find_adapter

        _, info = find_adapter(settings.adapter)  # a folder without an adapter fails here
        if "cmd+ddsc" in settings.methods:
            ddsc_models.append(info.base_model)
    for spec in ddsc_models:
        check_ddsc_layers(settings, spec)


def check_ddsc_layers(settings: RtpSettings, model_spec: str) -> None:
    """Validate ``--ddsc-layers`` and the toxic layer against a model's config (no weights)."""
    from transformers import AutoConfig

    from detox_ddsc import plan_layers

    try:
        hf_config = AutoConfig.from_pretrained(resolve_model_source(model_spec))
    except (OSError, ValueError):
        return  # no readable config (e.g. an uncached hub id): checked again when decoding
    plan_layers(hf_config, ddsc_config(settings, decode_config(settings, 0)))


@dataclass
class MethodModels:
    """Loads the base model and the CMD model once, when a method first needs them."""

    settings: RtpSettings
    options: ModelOptions
    _base: LoadedModel | None = field(default=None, init=False)
    _cmd: LoadedModel | None = field(default=None, init=False)

    def base(self) -> LoadedModel:
        """The model named by ``--model``."""
        if self._base is None:
            self._base = load_model(self.settings.model, self.options)
        return self._base

    def cmd(self) -> LoadedModel:
        """The CMD-trained model (``--adapter``)."""
        if self._cmd is None:
            from detox_cmd.inference import load_cmd_model

            assert self.settings.adapter is not None
            self._cmd = load_cmd_model(self.settings.adapter, self.options)
        return self._cmd

    def for_method(self, method: str) -> LoadedModel:
        """The model a method decodes with."""
        return self.cmd() if method.startswith("cmd") else self.base()


def model_label(settings: RtpSettings, method: str) -> str:
    """The ``model`` written into a method's generation records."""
    if method.startswith("cmd"):
        return f"adapter:{settings.adapter}"
    return settings.model


def decode_config(settings: RtpSettings, seed: int) -> DecodeConfig:
    """The sampling settings of the protocol (METHODS §2.8) for one chunk."""
    return DecodeConfig(
        max_new_tokens=settings.max_new_tokens,
        top_p=settings.top_p,
        temperature=settings.temperature,
        seed=seed,
    )


def ddsc_config(settings: RtpSettings, decode_cfg: DecodeConfig) -> Any:
    """The DDSC settings: ``--ddsc-layers`` (default: every layer) and ``--ddsc-toxic-layer``."""
    from detox_ddsc import DDSCConfig

    extra: dict[str, Any] = {}
    if settings.ddsc_layers is not None:
        extra["layers"] = settings.ddsc_layers
    if settings.ddsc_toxic_layer is not None:
        extra["toxic_layer"] = settings.ddsc_toxic_layer
    return DDSCConfig(decode=decode_cfg, **extra)


def method_decoder(method: str, settings: RtpSettings, models: MethodModels) -> BatchDecoder:
    """The batch decoder of ``method``."""
    if method not in METHOD_NAMES:
        raise DetoxError(f"unknown method {method!r}", f"use one of {', '.join(METHOD_NAMES)}")

    def run(texts: list[str], seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        lm = models.for_method(method)
        cfg = decode_config(settings, seed)
        if method == "vanilla":
            plain = decode(lm.model, lm.tokenizer, texts, cfg)
            return plain.texts, [{"stopped": s} for s in plain.stopped]
        if method == "ddsc":
            from detox_ddsc import generate

            out = generate(lm.model, lm.tokenizer, texts, ddsc_config(settings, cfg))
            extras = [
                {"stopped": s, LAYERS_KEY: [list(step) for step in steps]}
                for s, steps in zip(out.stopped, out.layers, strict=True)
            ]
            return out.texts, extras
        from detox_cmd.inference import generate_chain

        ddsc = ddsc_config(settings, cfg) if method == "cmd+ddsc" else None
        chains = generate_chain(lm.model, lm.tokenizer, texts, cfg, ddsc=ddsc)
        return [c.generation for c in chains], [
            {"chain": c.chain, "malformed": c.malformed} for c in chains
        ]

    return run
