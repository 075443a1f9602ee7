"""Sweeps: several settings of a method in one evaluation, under the same seeds.

``--sweep "ddsc.contrast_weight=0,0.5,1"`` adds one run per value, labelled
``ddsc:contrast_weight=0.5``; the field is a sampling setting (``DecodeConfig``: temperature,
top_p, top_k, repetition_penalty) or, for the DDSC methods, a ``DDSCConfig`` field
(contrast_weight, contrast_temperature, alpha, layers, ...), or, for the CMD methods, a chain
setting (``cmd.guided=false``: the free chain). Values are separated by commas, or by
``|`` where a value itself holds commas (``ddsc.layers=0,2,28,29,30|all``). Each ``--sweep``
varies one field; the runs of every sweep join the methods of ``--methods`` in one report.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from detox_core.decoding import DecodeConfig
from detox_core.errors import DetoxError
from detox_ddsc.config import DDSCConfig
from detox_eval.methods import CmdSettings, MethodSettings, get_method

SweepValue = bool | int | float | str
# The CMD settings a sweep may vary (the adapter is the same for every run of an evaluation).
CMD_SWEEP_FIELDS = frozenset(CmdSettings.model_fields) - {"adapter"}


class Variant(BaseModel):
    """One extra run of a sweep: a registered method with some settings changed."""

    model_config = ConfigDict(frozen=True)

    label: str
    method: str
    field: str  # "decode.temperature", "ddsc.contrast_weight"
    value: SweepValue


class Run(BaseModel):
    """What one labelled run of an evaluation decodes with."""

    model_config = ConfigDict(frozen=True)

    label: str
    method: str
    settings: MethodSettings


def _parse_value(text: str) -> SweepValue:
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text.strip()


def _field_path(method: str, field: str) -> str:
    if field in DecodeConfig.model_fields:
        return f"decode.{field}"
    if get_method(method).uses_ddsc and field in DDSCConfig.model_fields and field != "decode":
        return f"ddsc.{field}"
    if get_method(method).uses_adapter and field in CMD_SWEEP_FIELDS:
        return f"cmd.{field}"
    known = sorted(DecodeConfig.model_fields)
    if get_method(method).uses_ddsc:
        known += sorted(f for f in DDSCConfig.model_fields if f != "decode")
    if get_method(method).uses_adapter:
        known += sorted(CMD_SWEEP_FIELDS)
    raise DetoxError(
        f"{method} has no setting {field!r} to sweep", f"use one of {', '.join(known)}"
    )


def parse_sweep(spec: str, task: str) -> list[Variant]:
    """``METHOD.FIELD=V1,V2,...`` -> one Variant per value (see the module doc)."""
    head, sep, values_text = spec.partition("=")
    method, dot, field = head.strip().partition(".")
    if not sep or not dot or not field or not values_text.strip():
        raise DetoxError(
            f"bad --sweep {spec!r}", 'use METHOD.FIELD=V1,V2, e.g. "ddsc.alpha=0.05,0.1"'
        )
    get_method(method, task)
    path = _field_path(method, field)
    separator = "|" if "|" in values_text else ","
    values = [_parse_value(v) for v in values_text.split(separator) if v.strip()]
    return [
        Variant(label=f"{method}:{field}={value}", method=method, field=path, value=value)
        for value in values
    ]


def apply_variant(settings: MethodSettings, variant: Variant) -> MethodSettings:
    """The method settings with the variant's field set (validated like the options)."""
    part, field = variant.field.split(".", 1)
    data: dict[str, Any] = settings.model_dump()
    data[part][field] = variant.value
    if part == "decode":
        data["ddsc"]["decode"] = data["decode"]
    try:
        return MethodSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DetoxError(
            f"--sweep {variant.label}: {first['msg']}", "use values the setting accepts"
        ) from None


def plan_runs(
    methods: tuple[str, ...], variants: tuple[Variant, ...], settings: MethodSettings
) -> list[Run]:
    """The labelled runs: each method with the base settings, then every sweep value."""
    runs = [Run(label=m, method=m, settings=settings) for m in methods]
    runs += [
        Run(label=v.label, method=v.method, settings=apply_variant(settings, v)) for v in variants
    ]
    labels = [r.label for r in runs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise DetoxError(f"run {repeated[0]!r} is listed twice", "list each setting once")
    return runs
