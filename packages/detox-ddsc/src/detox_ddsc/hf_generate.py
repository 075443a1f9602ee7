"""DDSC and DoLa from transformers' own ``generate`` (a ``custom_generate`` decoding loop).

transformers v5 runs a callable passed as ``custom_generate`` in place of its sampling loop and
hands it the parameters that its own loop lacks, so a plain transformers user writes::

    import detox_ddsc

    out = model.generate(
        **inputs,
        custom_generate=detox_ddsc.custom_generate,
        ddsc_layers=[0, 2, 28, 29, 30],
        do_sample=True,
        top_p=0.9,
        max_new_tokens=20,
    )

The DDSC settings are ``ddsc_config`` (a ``DDSCConfig``; its ``decode`` part is ignored: the
generation config rules) and/or the single settings ``ddsc_layers``, ``ddsc_toxic_layer``,
``ddsc_profile``, ``ddsc_mode`` (``"ddsc"`` or ``"dola"``), ``ddsc_alpha``,
``ddsc_contrast_weight``, ``ddsc_contrast_temperature``, which override it. Every step runs the
decoder's own step scorer (``detox_ddsc.decoder.DDSCStepScorer``) on the last position's logits
and hidden states, then the prepared ``logits_processor`` (repetition penalty, temperature,
top-k/top-p, ...) and argmax or sampling; eos and the other stopping criteria, padding after eos
and ``return_dict_in_generate`` (``scores``, ``logits``) behave as in transformers' loop.

``custom_generate_folder()`` is the shipped ``custom_generate/`` folder for a hub repository (its
``generate.py`` delegates here); transformers runs it with ``trust_remote_code=True``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from detox_core.errors import DetoxError
from detox_ddsc.config import DDSCConfig, Mode
from detox_ddsc.decoder import DDSCStepScorer, plan_layers


def resolve_config(
    ddsc_config: DDSCConfig | None = None,
    *,
    layers: str | list[int] | None = None,
    toxic_layer: int | None = None,
    profile: str | None = None,
    mode: Mode | None = None,
    alpha: float | None = None,
    contrast_weight: float | None = None,
    contrast_temperature: float | None = None,
) -> DDSCConfig:
    """``ddsc_config`` (or the defaults) with the given single settings applied, validated."""
    overrides = {
        "layers": layers,
        "toxic_layer": toxic_layer,
        "profile": profile,
        "mode": mode,
        "alpha": alpha,
        "contrast_weight": contrast_weight,
        "contrast_temperature": contrast_temperature,
    }
    base = (ddsc_config or DDSCConfig()).model_dump()
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DDSCConfig.model_validate(base)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise DetoxError(
            f"bad DDSC setting ddsc_{name}={first.get('input')!r}: {first['msg']}",
            "see detox_ddsc.DDSCConfig",
        ) from None


def custom_generate(
    model: Any,
    input_ids: torch.Tensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    ddsc_config: DDSCConfig | None = None,
    ddsc_layers: str | list[int] | None = None,
    ddsc_toxic_layer: int | None = None,
    ddsc_profile: str | None = None,
    ddsc_mode: Mode | None = None,
    ddsc_alpha: float | None = None,
    ddsc_contrast_weight: float | None = None,
    ddsc_contrast_temperature: float | None = None,
    **model_kwargs: Any,
) -> Any:
    """The DDSC/DoLa decoding loop for ``model.generate(..., custom_generate=...)``.

    Returns what ``generate`` returns: the sequences ``[B, prompt + new]`` (finished rows padded
    with ``pad_token_id``), or a ``GenerateDecoderOnlyOutput`` with ``return_dict_in_generate``.
    """
    if getattr(model.config, "is_encoder_decoder", False):
        raise DetoxError("DDSC decodes decoder-only causal LMs", "use a causal LM")
    config = resolve_config(
        ddsc_config,
        layers=ddsc_layers,
        toxic_layer=ddsc_toxic_layer,
        profile=ddsc_profile,
        mode=ddsc_mode,
        alpha=ddsc_alpha,
        contrast_weight=ddsc_contrast_weight,
        contrast_temperature=ddsc_contrast_temperature,
    )
    scorer = DDSCStepScorer(model, plan_layers(model, config), config)
    return _decode_loop(
        model,
        scorer,
        input_ids,
        logits_processor,
        stopping_criteria,
        generation_config,
        model_kwargs,
    )


def _decode_loop(
    model: Any,
    scorer: DDSCStepScorer,
    input_ids: torch.Tensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    model_kwargs: dict[str, Any],
) -> Any:
    """transformers' ``_sample`` loop with the DDSC step scorer between the model and the
    logits processors."""
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    pad_token_id = generation_config._pad_token_tensor
    if pad_token_id is not None:
        pad_token_id = pad_token_id.to(input_ids.device)
    has_eos = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
    return_dict = bool(generation_config.return_dict_in_generate)
    scores: list[torch.Tensor] | None = (
        [] if return_dict and generation_config.output_scores else None
    )
    raw: list[torch.Tensor] | None = [] if return_dict and generation_config.output_logits else None
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
    model_kwargs["output_hidden_states"] = True
    outputs = model._prefill(input_ids, generation_config, model_kwargs)
    first = True
    while True:
        if not first:
            step_length = 1 if model_kwargs.get("use_cache") else None
            inputs = model.prepare_inputs_for_generation(
                input_ids, next_sequence_length=step_length, **model_kwargs
            )
            outputs = model(**inputs, return_dict=True)
        first = False
        model_kwargs = model._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=False
        )
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
        next_scores = logits_processor(input_ids, scorer(logits, outputs))
        if scores is not None:
            scores.append(next_scores)
        if raw is not None:
            raw.append(logits)
        if generation_config.do_sample:
            probs = torch.softmax(next_scores, dim=-1)
            next_tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
        else:
            next_tokens = torch.argmax(next_scores, dim=-1)
        if has_eos:
            next_tokens = next_tokens * unfinished + pad_token_id * (1 - unfinished)
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        done = stopping_criteria(input_ids, tuple(scores) if scores is not None else None)
        unfinished = unfinished & ~done
        del outputs
        if int(unfinished.max()) == 0:
            break
    if not return_dict:
        return input_ids
    fields: dict[str, Any] = {
        "sequences": input_ids,
        "scores": tuple(scores) if scores is not None else None,
        "logits": tuple(raw) if raw is not None else None,
        "past_key_values": model_kwargs.get("past_key_values"),
    }
    return GenerateDecoderOnlyOutput(**fields)


def custom_generate_folder() -> Path:
    """The shipped folder holding ``custom_generate/generate.py`` and ``requirements.txt``: copy
    its ``custom_generate`` into a model repository to share DDSC on a hub."""
    return Path(str(resources.files("detox_ddsc") / "hub"))
