"""The SafeEdit run (METHODS §1.2, §1.5): every instance's five inputs under every method.

For each SafeEdit instance and method (any registered SafeEdit method: ``vanilla``, ``ddsc``,
``dola``, ``dinm``, ``dinm+ddsc``) the model answers the adversarial prompt (DS) and the four
generalization inputs greedily with its chat template. The toxic layer T is located once per
instance from its safe/unsafe pair (``dynamic``, MODE-1) or comes from the DDSC config's toxic
layer or profile (``static``, MODE-2); locating it is not charged to any method's time. DINM
edits ``layers[T].mlp.down_proj`` before a method decodes and restores it afterwards.

The run folder is ``detox_eval.run_folder``'s: ``run.json``, ``generations.jsonl`` (one line per
instance and method; a rerun skips the lines already there), then ``judgements.jsonl`` and the
report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from detox_core.data.safeedit import SafeEditItem
from detox_core.decoding import DecodeConfig
from detox_core.errors import DetoxError
from detox_core.io import JsonlWriter, iter_jsonl
from detox_core.locking import locks_folder
from detox_core.models import LoadedModel
from detox_core.progress import progress_bar
from detox_core.records import Score
from detox_core.scoring import ToxicityScorer, score_texts
from detox_ddsc.decoder import plan_layers, resolve_toxic_layer
from detox_ddsc.dinm import DINMConfig, DINMEdit, DINMRequest, dinm_edit, with_suffix
from detox_ddsc.toxic_layer import locate_toxic_layer
from detox_eval.methods import SAFEEDIT_TASK, MethodSettings, get_method
from detox_eval.run_folder import GENERATIONS_NAME, RunManifest, open_run
from detox_eval.safeedit.metrics import METRICS, is_empty_response, judge_labels

TASK = SAFEEDIT_TASK
JUDGEMENTS_NAME = "judgements.jsonl"
ToxicMode = Literal["dynamic", "static"]
# The reference protocol: greedy answers with the chat template, 300 new tokens.
SAFEEDIT_DECODE = DecodeConfig(max_new_tokens=300, greedy=True, chat=True, max_input_tokens=2048)


def _default_methods() -> MethodSettings:
    return MethodSettings(decode=SAFEEDIT_DECODE, dinm=DINMConfig(chat=True))


class SafeEditSettings(BaseModel):
    """What the SafeEdit generations depend on (the run folder refuses other settings)."""

    model_config = ConfigDict(frozen=True)

    model: str = "default"
    mode: ToxicMode = "dynamic"
    toxic_offset: int = Field(1, ge=0, le=1, description="T = argmax - offset (1: reference).")
    method: MethodSettings = Field(default_factory=_default_methods)
    dinm_suffix_at_generation: bool = Field(
        True, description="DINM methods answer the inputs with the suffix (as the reference)."
    )


SafeEditManifest = RunManifest[SafeEditSettings]


class SafeEditGeneration(BaseModel):
    """The five responses of one instance under one method (one line of generations.jsonl)."""

    instance_id: int
    method: str
    model: str
    responses: dict[str, str]
    stopped: dict[str, str] = Field(default_factory=dict)
    toxic_layer: int | None = None
    edit: DINMEdit | None = None
    seconds: float
    extras: dict[str, Any] = Field(default_factory=dict)


class SafeEditJudgement(BaseModel):
    """The judge's score and the resulting label of one response."""

    instance_id: int
    method: str
    metric: str
    label: float | None
    score: Score
    empty: bool


def instance_inputs(item: SafeEditItem) -> dict[str, str]:
    """The five inputs of an instance under their metric names (DS first)."""
    return {"DS": item.adversarial_prompt, **item.generalization_inputs}


def dinm_request(item: SafeEditItem) -> DINMRequest:
    """What DINM needs from an instance: prompt, safe response, knowledge constrain."""
    return DINMRequest(
        prompt=item.adversarial_prompt,
        safe_response=item.safe_generation,
        constrain_prompt=item.knowledge_constrain.prompt,
        constrain_answer=item.knowledge_constrain.answer,
    )


def generation_key(obj: dict[str, Any]) -> tuple[str, int]:
    """Resume key of a generations.jsonl line: (method, instance id)."""
    return (str(obj["method"]), int(obj["instance_id"]))


class ToxicLayerSource:
    """T per instance: located from the instance's pair (dynamic) or fixed (static)."""

    def __init__(self, lm: LoadedModel, settings: SafeEditSettings) -> None:
        self.lm = lm
        self.settings = settings
        self.static: int | None = None
        if settings.mode == "static":
            self.static = resolve_toxic_layer(lm.model, settings.method.ddsc)
            if self.static is None:
                raise DetoxError(
                    "--mode static found no toxic layer", "pass --toxic-layer T or --profile FILE"
                )

    def __call__(self, item: SafeEditItem) -> int:
        """T of one instance."""
        if self.static is not None:
            return self.static
        profile = locate_toxic_layer(
            self.lm.model,
            self.lm.tokenizer,
            [(item.safe_generation, item.unsafe_generation)],
            offset=self.settings.toxic_offset,
        )
        return profile.toxic_layer


def run_method(
    lm: LoadedModel,
    item: SafeEditItem,
    name: str,
    settings: SafeEditSettings,
    toxic: int | None,
) -> SafeEditGeneration:
    """Answer the five inputs of ``item`` with method ``name`` and time it."""
    method = get_method(name, TASK)
    started = time.perf_counter()
    inputs = instance_inputs(item)
    prompts = list(inputs.values())
    if method.uses_dinm and settings.dinm_suffix_at_generation:
        prompts = [with_suffix(p, settings.method.dinm.suffix) for p in prompts]
    edit: AbstractContextManager[DINMEdit | None] = nullcontext()
    if method.uses_dinm:
        assert toxic is not None
        edit = dinm_edit(lm.model, lm.tokenizer, dinm_request(item), toxic, settings.method.dinm)
    with edit as edit_result:
        out = method.decoder(lm, prompts, settings.method, toxic)
    extras: dict[str, Any] = {}
    if method.uses_ddsc:
        extras["ddsc_steps"] = sum(len(e.get("layers", [])) for e in out.extras)
    uses_t = method.uses_ddsc or method.uses_dinm
    return SafeEditGeneration(
        instance_id=item.id,
        method=name,
        model=settings.model,
        responses=dict(zip(inputs, out.texts, strict=True)),
        stopped=dict(zip(inputs, out.stopped, strict=True)),
        toxic_layer=toxic if uses_t else None,
        edit=edit_result,
        seconds=time.perf_counter() - started,
        extras=extras,
    )


def open_safeedit_run(directory: Path, settings: SafeEditSettings) -> SafeEditManifest:
    """Open (or resume) the run folder; refuses one made with other settings."""
    return open_run(directory, TASK, settings)


@locks_folder("directory")
def run_safeedit(
    lm: LoadedModel,
    items: Sequence[SafeEditItem],
    methods: Sequence[str],
    settings: SafeEditSettings,
    directory: str | Path,
    show_progress: bool = True,
) -> list[SafeEditGeneration]:
    """Generate for every (instance, method) not yet in ``directory``; return all of them.

    Instances are the outer loop, so an interrupted run has every method for the first items.
    """
    directory = Path(directory)
    manifest = open_safeedit_run(directory, settings)
    chosen = [get_method(m, TASK) for m in methods]
    if any(m.uses_ddsc for m in chosen):
        plan_layers(lm.model, settings.method.ddsc.model_copy(update={"toxic_layer": 0}))
    needs_t = any(m.uses_ddsc or m.uses_dinm for m in chosen)
    toxic_source = ToxicLayerSource(lm, settings) if needs_t else None
    path = directory / GENERATIONS_NAME
    with JsonlWriter(path, key=generation_key) as writer, progress_bar() as progress:
        task = progress.add_task("safeedit", total=len(items) * len(methods), visible=show_progress)
        for item in items:
            todo = [m for m in methods if (m, item.id) not in writer.done]
            toxic = toxic_source(item) if todo and toxic_source is not None else None
            for name in todo:
                record = run_method(lm, item, name, settings, toxic)
                writer.write(record)
                manifest.add_time(name, record.seconds)
            if todo:
                manifest.save(directory)
            progress.advance(task, len(methods))
    wanted = {(m, item.id) for m in methods for item in items}
    records = [SafeEditGeneration.model_validate(obj) for _, obj in iter_jsonl(path)]
    return [r for r in records if (r.method, r.instance_id) in wanted]


def judge_generations(
    records: Sequence[SafeEditGeneration], judge: ToxicityScorer
) -> list[SafeEditJudgement]:
    """Score every response with the judge (one batch) and label it."""
    keys = [(r, metric) for r in records for metric in METRICS if metric in r.responses]
    texts = [r.responses[metric] for r, metric in keys]
    scores = score_texts(judge, texts) if texts else []
    labels = judge_labels(texts, [s.value for s in scores])
    return [
        SafeEditJudgement(
            instance_id=r.instance_id,
            method=r.method,
            metric=metric,
            label=label,
            score=score,
            empty=is_empty_response(text),
        )
        for (r, metric), text, score, label in zip(keys, texts, scores, labels, strict=True)
    ]
