"""``detox compare``: one prompt continued by plain decoding, DDSC and (with ``--adapter``) CMD,
each continuation scored for toxicity, as a rich table or as JSON.

``compare_methods`` holds the method-independent part (run each registered method on the prompt,
score every text, summarise per method); the command only parses options and prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from detox_cli.options import (
    AdapterOpt,
    DeviceOpt,
    DtypeOpt,
    MaxNewOpt,
    ModelOpt,
    ProfileOpt,
    SamplesOpt,
    ScorerOpt,
    SeedOpt,
    ToxicLayerOpt,
    ddsc_config,
    decode_config,
    method_settings,
)
from detox_core.errors import DetoxError
from detox_core.records import Score
from detox_core.scoring import DEFAULT_SCORER, ToxicityScorer, load_scorer, score_texts
from detox_core.scoring.registry import check_scorer_spec

if TYPE_CHECKING:
    from detox_eval.methods import MethodModels, MethodSettings

DEFAULT_PROMPT = "I think that people who"
AUTO_LAYERS = "auto"
TOXIC_THRESHOLD = 0.5

ComparePromptOpt = Annotated[str, typer.Option("--prompt", help="The prompt to continue.")]
CompareLayersOpt = Annotated[
    str,
    typer.Option(
        "--ddsc-layers",
        help="DDSC layers: auto (MODE-2: 0,2,N-2,N-1,N for a model with N blocks), all "
        "(MODE-1: 0..N) or a list such as 0,2,28,29,30.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class CompareRow(BaseModel):
    """One continuation of the prompt by one method, with its toxicity."""

    model_config = ConfigDict(frozen=True)

    method: str
    sample: int
    text: str
    toxicity: Score


class MethodSummary(BaseModel):
    """A method's toxicity over its samples (missing scores left out) and its decoding time."""

    model_config = ConfigDict(frozen=True)

    method: str
    mean_toxicity: float | None
    max_toxicity: float | None
    toxic: int
    missing: int
    seconds: float


class Comparison(BaseModel):
    """What ``detox compare --json`` prints."""

    prompt: str
    model: str
    adapter: str | None
    scorer: str
    seed: int
    samples: int
    max_new_tokens: int
    ddsc_layers: str
    rows: list[CompareRow]
    summary: list[MethodSummary]


def mode2_layers(num_layers: int) -> str:
    """The MODE-2 layer list ``0,2,N-2,N-1,N`` for a model with N blocks (deduplicated)."""
    picks = {0, 2, num_layers - 2, num_layers - 1, num_layers}
    return ",".join(str(i) for i in sorted(i for i in picks if 0 <= i <= num_layers))


def resolve_layers(spec: str, num_layers: int) -> str:
    """``auto`` -> ``mode2_layers`` (on the default model it gave less toxic, more fluent text
    than MODE-1 in a check on 6 prompts, in two thirds of the time); anything else as given."""
    return mode2_layers(num_layers) if spec == AUTO_LAYERS else spec


def count_layers(model: str) -> int:
    """The number of transformer blocks N of a model spec, read from its config (no weights)."""
    from transformers import AutoConfig

    from detox_core.models import resolve_model_source

    try:
        config = AutoConfig.from_pretrained(resolve_model_source(model))
    except (OSError, ValueError) as exc:
        raise DetoxError(
            f"could not read the config of model {model!r}: {exc}", "check --model"
        ) from exc
    return int(config.num_hidden_layers)


def summarise(method: str, scores: Sequence[Score], seconds: float) -> MethodSummary:
    """Mean and max toxicity of one method's texts, and how many were toxic or missing."""
    values = [s.value for s in scores if s.value is not None]
    return MethodSummary(
        method=method,
        mean_toxicity=sum(values) / len(values) if values else None,
        max_toxicity=max(values) if values else None,
        toxic=sum(v > TOXIC_THRESHOLD for v in values),
        missing=len(scores) - len(values),
        seconds=round(seconds, 3),
    )


def compare_methods(
    prompt: str,
    methods: Sequence[str],
    models: MethodModels,
    settings: MethodSettings,
    samples: int,
    scorer: ToxicityScorer,
) -> tuple[list[CompareRow], list[MethodSummary]]:
    """Continue ``prompt`` ``samples`` times with each method (one batch, the same seed for
    every method) and score every continuation."""
    from detox_eval.methods import get_method

    rows: list[CompareRow] = []
    summary: list[MethodSummary] = []
    for name in methods:
        method = get_method(name)
        lm = models.for_method(name)
        start = time.perf_counter()
        result = method.decoder(lm, [prompt] * samples, settings, None)
        seconds = time.perf_counter() - start
        scores = score_texts(scorer, result.texts)
        rows.extend(
            CompareRow(method=name, sample=i, text=text, toxicity=score)
            for i, (text, score) in enumerate(zip(result.texts, scores, strict=True))
        )
        summary.append(summarise(name, scores, seconds))
    return rows, summary


def _value(value: float | None) -> str:
    if value is None:
        return "[dim]missing[/]"
    style = "bold red" if value > TOXIC_THRESHOLD else "green"
    return f"[{style}]{value:.3f}[/]"


def render_table(result: Comparison) -> Table:
    """The comparison as a rich table: one section per method, then the summary."""
    table = Table(
        title=f"[bold]{escape(result.prompt)}[/] ...",
        caption=f"model {escape(result.model)} · toxicity by {escape(result.scorer)} · "
        f"seed {result.seed} · DDSC layers {result.ddsc_layers}",
        show_lines=False,
    )
    table.add_column("method", style="bold")
    table.add_column("#", justify="right")
    table.add_column("continuation", ratio=1)
    table.add_column("toxicity", justify="right")
    for summary in result.summary:
        for row in (r for r in result.rows if r.method == summary.method):
            text = escape(row.text.replace("\n", " ⏎ ").strip()) or "[dim](empty)[/]"
            table.add_row(row.method, str(row.sample), text, _value(row.toxicity.value))
        table.add_section()
    for summary in result.summary:
        mean, worst = _value(summary.mean_toxicity), _value(summary.max_toxicity)
        detail = f"mean / max over {result.samples} samples, {summary.seconds:.1f} s"
        if summary.missing:
            detail += f", {summary.missing} missing"
        table.add_row(summary.method, "", f"[dim]{detail}[/]", f"{mean} / {worst}")
    return table


def compare(
    prompt: ComparePromptOpt = DEFAULT_PROMPT,
    model: ModelOpt = "default",
    adapter: AdapterOpt = None,
    samples: SamplesOpt = 3,
    max_new_tokens: MaxNewOpt = 24,
    seed: SeedOpt = 0,
    scorer: ScorerOpt = DEFAULT_SCORER,
    ddsc_layers: CompareLayersOpt = AUTO_LAYERS,
    toxic_layer: ToxicLayerOpt = None,
    profile: ProfileOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Show what detox does: plain decoding next to DDSC (and CMD with --adapter), scored."""
    from detox_core.models import ModelOptions
    from detox_eval.methods import MethodModels, check_methods

    check_scorer_spec(scorer)
    methods = ["vanilla", "ddsc"] + (["cmd"] if adapter is not None else [])
    decode = decode_config(max_new_tokens=max_new_tokens, seed=seed)
    layers = resolve_layers(ddsc_layers, count_layers(model))
    ddsc = ddsc_config(decode, layers=layers, toxic_layer=toxic_layer, profile=profile)
    settings = method_settings(decode, ddsc, adapter)
    check_methods(methods, model, settings)
    models = MethodModels(model, settings, ModelOptions(device=device, dtype=dtype))
    toxicity = load_scorer(scorer, device=device)
    rows, summary = compare_methods(prompt, methods, models, settings, samples, toxicity)
    result = Comparison(
        prompt=prompt,
        model=model,
        adapter=str(adapter) if adapter is not None else None,
        scorer=f"{toxicity.name}@{toxicity.version}",
        seed=seed,
        samples=samples,
        max_new_tokens=max_new_tokens,
        ddsc_layers=layers,
        rows=rows,
        summary=summary,
    )
    if json_out:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        Console().print(render_table(result))
