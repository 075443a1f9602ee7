"""``detox cmd synthesize`` and its stages: detect, rephrase, continue, assemble; and merge.

``synthesize`` runs the four stages in sequence into one directory; each stage is also its own
command working on the previous stage's file in ``--out``. Every stage resumes after an
interruption: rerun the same command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from detox_cli.common import parse_shard
from detox_cli.options import DeviceOpt, DtypeOpt, ModelOpt, ScorerOpt, SeedOpt, dtype_name
from detox_core.data import read_prompts
from detox_core.errors import DetoxError
from detox_core.parallel import current_group
from detox_core.scoring import DEFAULT_SCORER

PromptsOpt = Annotated[
    Path, typer.Option("--prompts", help="Prompts file: RTP/detox JSONL or one prompt a line.")
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="Output directory (stage files, train.jsonl, manifest.json).")
]
DetectorOpt = Annotated[
    str | None,
    typer.Option(
        "--detector",
        help="Span detector dir, or 'scorer' (bigrams scored by --scorer). Default: the default Segment-CNN.",
    ),
]
RephraserOpt = Annotated[
    str,
    typer.Option(
        "--rephraser",
        help="causal:MODEL_SPEC (instruction to a causal LM), prefix:MODEL_SPEC (fill each mask by continuing the text before it) or seq2seq:PATH (infill model).",
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Use only the first N prompts (before sharding)."),
]
ShardOpt = Annotated[
    str | None,
    typer.Option("--shard", help="I/N: this machine's share (prompt positions p with p % N == I)."),
]
MaskOpt = Annotated[
    float,
    typer.Option(
        "--mask-threshold",
        min=0.0,
        max=1.0,
        help="Segment toxic when p > this (0.5 code, 0.3 paper).",
    ),
]
NoSpanOpt = Annotated[
    str,
    typer.Option(
        "--no-span",
        help="Toxic prompt without a toxic segment: most_toxic (mask the top pair) or drop.",
    ),
]
SimilarityOpt = Annotated[
    float,
    typer.Option(
        "--similarity",
        min=-1.0,
        max=1.0,
        help="Minimum MiniLM cosine between rephrasing and original prompt.",
    ),
]
SimModelOpt = Annotated[
    str | None,
    typer.Option(
        "--similarity-model",
        help="Sentence encoder dir for the similarity check (default all-MiniLM-L6-v2).",
    ),
]
AttemptsOpt = Annotated[int, typer.Option("--attempts", min=1, help="Rephrasing tries per prompt.")]
SamplesOpt = Annotated[int, typer.Option("--samples", min=1, help="Continuations per prompt (K).")]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch-size", min=1, help="Prompts per generation call (1: seeds fixed per prompt)."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]

_console = Console(stderr=True)


def _no_span(value: str) -> Literal["most_toxic", "drop"]:
    if value == "most_toxic":
        return "most_toxic"
    if value == "drop":
        return "drop"
    raise DetoxError(f"bad --no-span {value!r}", "use most_toxic or drop")


def _report(out: Path) -> None:
    from detox_cmd.synthesis.manifest import load_manifest

    manifest = load_manifest(out)
    if manifest is None:
        return
    for name, counts in manifest.stages.items():
        reasons = ", ".join(f"{k}={v}" for k, v in counts.reasons.items()) or "-"
        _console.print(
            f"{name:>9}: {counts.entering} in, {counts.kept} kept, {counts.dropped} dropped ({reasons})"
        )
    _console.print(f"manifest: {out / 'manifest.json'}")


def synthesize(
    prompts: PromptsOpt,
    out: OutOpt,
    model: ModelOpt = "default",
    detector: DetectorOpt = None,
    rephraser: RephraserOpt = "prefix:default",
    scorer: ScorerOpt = DEFAULT_SCORER,
    limit: LimitOpt = None,
    seed: SeedOpt = 0,
    shard: ShardOpt = None,
    mask_threshold: MaskOpt = 0.5,
    no_span: NoSpanOpt = "most_toxic",
    similarity: SimilarityOpt = 0.4,
    similarity_model: SimModelOpt = None,
    attempts: AttemptsOpt = 5,
    samples: SamplesOpt = 5,
    batch_size: BatchOpt = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Synthesize CMD training chains: detect, rephrase, continue, assemble → OUT/train.jsonl.

    Rerun the same command to resume. Under `accelerate launch --num_processes N` every process
    takes its share and rank 0 merges them into OUT. Without a shared disk, run --shard I/N on
    each machine into its own --out, then combine them with `detox cmd merge SHARD_DIR... --out DIR`.
    """
    from detox_cmd.synthesis import Components, SynthesisConfig, select_prompts
    from detox_cmd.synthesis import synthesize as run_all
    from detox_core.models import ModelOptions

    config = SynthesisConfig(
        model=model,
        detector=detector,
        rephraser=rephraser,
        scorer=scorer,
        limit=limit,
        seed=seed,
        shard=shard,
        mask_threshold=mask_threshold,
        no_span=_no_span(no_span),
        similarity=similarity,
        similarity_model=similarity_model,
        attempts=attempts,
        samples=samples,
        batch_size=batch_size,
        device=device,
        dtype=dtype_name(dtype),
    )
    group = current_group()
    if group.size > 1:
        if shard is not None:
            raise DetoxError(
                "--shard was given to a launched process", "drop --shard under accelerate launch"
            )
        from detox_cmd.synthesis.parallel import synthesize_data_parallel

        device = group.model_options(ModelOptions(device=config.device)).device
        config = config.model_copy(update={"device": device})
        merged = synthesize_data_parallel(
            read_prompts(prompts, limit=limit), out, config, group, show_progress=not quiet
        )
        if merged is None:
            return
    else:
        items = select_prompts(read_prompts(prompts, limit=limit), None, parse_shard(shard))
        run_all(items, out, Components(config), config, show_progress=not quiet)
    _report(out)
    _console.print(f"wrote {out / 'train.jsonl'}")


def detect(
    prompts: PromptsOpt,
    out: OutOpt,
    detector: DetectorOpt = None,
    scorer: ScorerOpt = DEFAULT_SCORER,
    limit: LimitOpt = None,
    shard: ShardOpt = None,
    mask_threshold: MaskOpt = 0.5,
    no_span: NoSpanOpt = "most_toxic",
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Stage 1: score the prompts and mask the toxic ones → OUT/stage1_masked.jsonl."""
    from detox_cmd.synthesis import Components, SynthesisConfig, run_detect, select_prompts

    config = SynthesisConfig(
        detector=detector,
        scorer=scorer,
        limit=limit,
        shard=shard,
        mask_threshold=mask_threshold,
        no_span=_no_span(no_span),
        device=device,
    )
    items = select_prompts(read_prompts(prompts, limit=limit), None, parse_shard(shard))
    out.mkdir(parents=True, exist_ok=True)
    run_detect(items, out, Components(config), config, show_progress=not quiet)
    _report(out)


def rephrase(
    out: OutOpt,
    rephraser: RephraserOpt = "prefix:default",
    scorer: ScorerOpt = DEFAULT_SCORER,
    seed: SeedOpt = 0,
    similarity: SimilarityOpt = 0.4,
    similarity_model: SimModelOpt = None,
    attempts: AttemptsOpt = 5,
    batch_size: BatchOpt = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Stage 2: fill the masks of the toxic prompts → OUT/stage2_rephrased.jsonl."""
    from detox_cmd.synthesis import Components, SynthesisConfig, run_rephrase

    config = SynthesisConfig(
        rephraser=rephraser,
        scorer=scorer,
        seed=seed,
        similarity=similarity,
        similarity_model=similarity_model,
        attempts=attempts,
        batch_size=batch_size,
        device=device,
        dtype=dtype_name(dtype),
    )
    run_rephrase(out, Components(config), config, show_progress=not quiet)
    _report(out)


def continue_(
    out: OutOpt,
    model: ModelOpt = "default",
    scorer: ScorerOpt = DEFAULT_SCORER,
    seed: SeedOpt = 0,
    samples: SamplesOpt = 5,
    batch_size: BatchOpt = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Stage 3: K scored continuations per prompt → OUT/stage3_continuations.jsonl."""
    from detox_cmd.synthesis import Components, SynthesisConfig, run_continue

    config = SynthesisConfig(
        model=model,
        scorer=scorer,
        seed=seed,
        samples=samples,
        batch_size=batch_size,
        device=device,
        dtype=dtype_name(dtype),
    )
    run_continue(out, Components(config), config, show_progress=not quiet)
    _report(out)


def assemble(out: OutOpt, quiet: QuietOpt = False) -> None:
    """Stage 4: choose positive/negatives and build the chains → OUT/train.jsonl."""
    from detox_cmd.synthesis import SynthesisConfig, run_assemble

    run_assemble(out, SynthesisConfig(), show_progress=not quiet)
    _report(out)


def merge(
    shard_dirs: Annotated[list[Path], typer.Argument(help="The --out directories of the shards.")],
    out: OutOpt,
) -> None:
    """Combine shard outputs: concatenate train.jsonl, add up the manifests."""
    from detox_cmd.synthesis import merge_outputs

    merge_outputs(shard_dirs, out)
    _report(out)
