"""``detox cmd spans``: train, evaluate and try the Segment-CNN toxic-span detector."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from detox_cli.options import DeviceOpt
from detox_core.errors import DetoxError

if TYPE_CHECKING:
    from detox_cmd.spans import SpanDecision, SpanDetector

DetectorOpt = Annotated[
    Path | None,
    typer.Option(
        "--detector", help="A trained span-detector directory (default: the shipped one)."
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="A pair (token) is toxic when p > this (default: the detector's stored threshold).",
    ),
]
CharRule = Literal["intersection", "union"]
RuleOpt = Annotated[
    CharRule | None,
    typer.Option(
        "--char-rule",
        help="Pairs to characters: intersection (a token is toxic when all its pairs are; "
        "SemEval-style spans) or union (both tokens of every toxic pair, as CMD masks). "
        "Default: the detector's stored rule.",
    ),
]


def _load(detector: Path | None, device: str) -> SpanDetector:
    """The named detector directory, or the default (shipped) detector."""
    from detox_cmd.spans import SpanDetector, default_detector

    if detector is None:
        return default_detector(device)
    if not detector.is_dir():
        raise DetoxError(f"detector directory not found: {detector}", "check the --detector path")
    return SpanDetector.load(detector, device)


def _decision(
    model: SpanDetector, threshold: float | None, char_rule: CharRule | None
) -> SpanDecision:
    """The detector's stored decision rule with the command-line overrides."""
    update: dict[str, object] = {}
    if threshold is not None:
        update["threshold"] = threshold
    if char_rule is not None:
        update["char_rule"] = char_rule
    return model.decision.model_copy(update=update)


def train(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the detector to.")],
    jigsaw: Annotated[
        Path | None,
        typer.Option("--jigsaw", help="Jigsaw train.csv (segments labelled by --scorer)."),
    ] = None,
    spans: Annotated[
        list[Path] | None,
        typer.Option("--spans", help="SemEval toxic-spans CSV with gold offsets (repeatable)."),
    ] = None,
    encoder: Annotated[
        str, typer.Option("--encoder", help="'default' (all-MiniLM-L6-v2) or a BERT-style dir.")
    ] = "default",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Encoder learning rate.")] = 1e-4,
    head_lr: Annotated[
        float, typer.Option("--head-lr", min=0.0, help="Heads' learning rate.")
    ] = 1e-3,
    toxic_weight: Annotated[
        float, typer.Option("--toxic-weight", min=0.0, help="CE weight of toxic segments.")
    ] = 2.0,
    segment_weight: Annotated[
        float, typer.Option("--segment-weight", min=0.0, help="Weight of the segment loss.")
    ] = 1.0,
    max_length: Annotated[int, typer.Option("--max-length", min=4, max=512)] = 128,
    jigsaw_toxic: Annotated[int, typer.Option("--jigsaw-toxic", min=0)] = 9000,
    jigsaw_non_toxic: Annotated[int, typer.Option("--jigsaw-non-toxic", min=0)] = 1000,
    max_jigsaw: Annotated[
        int | None, typer.Option("--max-jigsaw", min=1, help="At most N Jigsaw comments in all.")
    ] = None,
    scorer: Annotated[
        str, typer.Option("--scorer", help="Scorer labelling Jigsaw segments.")
    ] = "profanity",
    dev_fraction: Annotated[
        float,
        typer.Option("--dev-fraction", min=0.0, max=0.9, help="Share of gold-span texts held out."),
    ] = 0.05,
    head: Annotated[
        Literal["segment", "token"],
        typer.Option("--head", help="segment: the paper's 2-tap pair head; token: a token tagger."),
    ] = "segment",
    lora: Annotated[
        bool,
        typer.Option(
            "--lora/--full", help="Train a LoRA adapter (frozen encoder) or every weight."
        ),
    ] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", min=1, help="LoRA rank.")] = 8,
    tune: Annotated[
        bool,
        typer.Option("--tune/--no-tune", help="Choose threshold and post-processing on dev."),
    ] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Train a Segment-CNN on SemEval toxic spans and/or Jigsaw comments (resumes per epoch)."""
    from rich.console import Console

    from detox_cmd.spans import SpanDataConfig, SpanTrainConfig, train_detector

    if not spans and jigsaw is None:
        raise DetoxError("no training data given", "pass --spans CSV and/or --jigsaw CSV")
    for path in [*(spans or []), *([jigsaw] if jigsaw else [])]:
        if not path.is_file():
            raise DetoxError(f"file not found: {path}", "check the path")
    data = SpanDataConfig(
        spans=spans or [],
        jigsaw=jigsaw,
        scorer=scorer,
        jigsaw_toxic=jigsaw_toxic,
        jigsaw_non_toxic=jigsaw_non_toxic,
        max_jigsaw=max_jigsaw,
        seed=seed,
    )
    config = SpanTrainConfig(
        encoder=encoder,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        toxic_weight=toxic_weight,
        segment_weight=segment_weight,
        max_length=max_length,
        dev_fraction=dev_fraction,
        head=head,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        tune=tune,
        seed=seed,
        device=device,
    )
    trained = train_detector(data, config, checkpoint=out / ".train_state")
    trained.detector.save(out, trained.metadata)
    console = Console(stderr=True)
    meta = trained.metadata
    console.print(
        f"trained on {meta.n_train_texts} texts ({meta.n_windows} windows, {meta.steps} steps) "
        f"in {meta.seconds:.0f} s; saved to {out}"
    )
    if meta.dev is not None:
        console.print(
            f"dev ({meta.n_dev_texts} texts): span F1 {meta.dev.span_f1:.4f}, segment P "
            f"{meta.dev.segment_precision:.4f} R {meta.dev.segment_recall:.4f}, sentence acc "
            f"{meta.dev.sentence_accuracy:.4f}"
        )
    if meta.dev_tuned is not None:
        console.print(
            f"dev with the stored decision ({_describe(meta.dev_tuned.decision)}): span F1 "
            f"{meta.dev_tuned.span_f1:.4f}, segment P {meta.dev_tuned.segment_precision:.4f} "
            f"R {meta.dev_tuned.segment_recall:.4f}"
        )


def _describe(decision: SpanDecision) -> str:
    """One line for a decision rule."""
    return (
        f"threshold {decision.threshold}, {decision.char_rule}, whole words "
        f"{'on' if decision.whole_words else 'off'}, trim punctuation "
        f"{'on' if decision.trim_punctuation else 'off'}, sentence gate {decision.sentence_gate}"
    )


def evaluate(
    spans: Annotated[Path, typer.Option("--spans", help="SemEval toxic-spans CSV (gold offsets).")],
    detector: DetectorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    threshold: ThresholdOpt = None,
    char_rule: RuleOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    device: DeviceOpt = "auto",
) -> None:
    """Span F1 (SemEval-2021 Task 5), segment and character precision/recall, sentence accuracy,
    under the detector's stored decision rule (threshold, post-processing) unless overridden."""
    import time

    from rich.console import Console
    from rich.table import Table

    from detox_cmd.spans import evaluate_predictions
    from detox_core.data.toxic_spans import read_toxic_spans

    if not spans.is_file():
        raise DetoxError(f"file not found: {spans}", "check the --spans path")
    rows = read_toxic_spans(spans)
    model = _load(detector, device)
    decision = _decision(model, threshold, char_rule)
    started = time.perf_counter()
    predictions = model.predict([r.text for r in rows], batch_size=batch_size)
    seconds = time.perf_counter() - started
    result = evaluate_predictions(predictions, [r.spans for r in rows], decision)
    report = {
        "detector": model.name,
        "detector_version": model.version,
        "stored_threshold": model.decision.threshold,
        "predict_seconds": round(seconds, 2),
        **result.model_dump(mode="json"),
    }
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title=f"{spans.name}: {result.n_texts} texts, {model.name}@{model.version}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    names = ("span_f1", "segment_precision", "segment_recall", "char_precision", "char_recall")
    for name in (*names, "sentence_accuracy"):
        table.add_row(name, f"{getattr(result, name):.4f}")
    table.add_row("stored threshold", f"{model.decision.threshold}")
    table.add_row("decision used", _describe(decision))
    table.add_row("predict time", f"{seconds:.1f} s")
    Console().print(table)


def predict(
    text: Annotated[list[str], typer.Option("--text", help="A text to check (repeatable).")],
    detector: DetectorOpt = None,
    threshold: ThresholdOpt = None,
    char_rule: RuleOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Show each text with its toxic spans marked, the sentence toxicity and the toxic pairs."""
    from rich.console import Console
    from rich.markup import escape

    if not text:
        raise DetoxError("no text given", "pass --text TEXT")
    model = _load(detector, device)
    decision = _decision(model, threshold, char_rule)
    console = Console(highlight=False)
    console.print(f"{model.name}@{model.version} ({_describe(decision)})")
    for item, prediction in zip(text, model.predict(list(text)), strict=True):
        ranges = prediction.toxic_char_ranges(decision)
        marked, cursor = [], 0
        for start, end in ranges:
            marked.append(escape(item[cursor:start]))
            marked.append(f"[bold red]{escape(item[start:end])}[/bold red]")
            cursor = end
        marked.append(escape(item[cursor:]))
        console.print("".join(marked))
        spans_text = ", ".join(repr(item[s:e]) for s, e in ranges) or "none"
        console.print(f"  toxic spans: {escape(spans_text)}")
        console.print(f"  sentence toxicity: {prediction.sentence_prob:.3f}")
        offsets = prediction.offsets
        for i, prob in enumerate(prediction.segment_probs):
            if prob > decision.threshold:
                segment = item[offsets[i][0] : offsets[i + 1][1]]
                console.print(f"  {prob:.3f}  {escape(segment)}")
