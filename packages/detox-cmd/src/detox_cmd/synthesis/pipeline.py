"""The synthesis stages on files: detect → rephrase → continue → assemble (METHODS §2.3–2.6).

Each stage reads the kept records of the previous stage's file in ``out_dir`` and appends one
record per prompt (kept or dropped, key = prompt id) to its own file with ``JsonlWriter``, so an
interrupted stage resumes where it stopped. Every stage writes in its input order and works in
fixed blocks of ``batch_size`` prompts whose seed comes from the block's prompt ids, so a resumed
run writes exactly the records an uninterrupted one would. ``assemble`` has no model; it rewrites
``train.jsonl`` atomically from the continuations file.

Sharding (``--shard I/N``): shard I takes the prompts at positions p (after ``--limit``) with
``p % N == I``. Shards run into separate directories; ``merge_outputs``
concatenates their ``train.jsonl`` and adds up their manifests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from detox_cmd.chain import ChainRecord
from detox_cmd.synthesis.assembly import chain_record, select_for
from detox_cmd.synthesis.components import Components
from detox_cmd.synthesis.config import (
    STAGE1_FILE,
    STAGE2_FILE,
    STAGE3_FILE,
    STAGE4_DROPPED_FILE,
    TRAIN_FILE,
    StageName,
    SynthesisConfig,
)
from detox_cmd.synthesis.continuations import sample_continuations, score_groups
from detox_cmd.synthesis.manifest import (
    Manifest,
    StageCounts,
    count_stage,
    load_manifest,
    score_labels,
    start_stage,
    update_manifest,
)
from detox_cmd.synthesis.masking import mask_prompt
from detox_cmd.synthesis.records import SynthesisRecord, record_key
from detox_cmd.synthesis.rephrasing import RephraseOutcome, rephrase_with_retries, stable_seed
from detox_core.errors import DetoxError
from detox_core.io import JsonlWriter, atomic_write_text, read_jsonl_records
from detox_core.locking import locks_folder
from detox_core.progress import progress_bar
from detox_core.records import Prompt, Score
from detox_core.scoring import score_texts

MISSING_PROMPT_SCORE = "missing_prompt_score"
FILE_SCORER = "file"
DETECT_BATCH = 32
T = TypeVar("T")

_STAGE_FILES: dict[StageName, str] = {
    "detect": STAGE1_FILE,
    "rephrase": STAGE2_FILE,
    "continue": STAGE3_FILE,
}
_PREVIOUS: dict[StageName, StageName] = {
    "rephrase": "detect",
    "continue": "rephrase",
    "assemble": "continue",
}


def select_prompts(
    prompts: Sequence[Prompt], limit: int | None, shard: tuple[int, int]
) -> list[Prompt]:
    """The first ``limit`` prompts, then those of shard ``(index, count)`` by position modulo."""
    index, count = shard
    chosen = list(prompts[:limit] if limit is not None else prompts)
    return [p for position, p in enumerate(chosen) if position % count == index]


def _blocks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def read_stage(path: Path) -> list[SynthesisRecord]:
    """The records of a stage file (the first record of each id, in file order)."""
    if not path.exists():
        return []
    seen: set[str] = set()
    records: list[SynthesisRecord] = []
    for record in read_jsonl_records(path, SynthesisRecord):
        if record.id not in seen:
            seen.add(record.id)
            records.append(record)
    return records


def _stage_records(path: Path, ids: Sequence[str]) -> list[SynthesisRecord]:
    wanted = set(ids)
    return [r for r in read_stage(path) if r.id in wanted]


def stage_inputs(out_dir: Path, stage: StageName) -> list[SynthesisRecord]:
    """The kept records of the stage before ``stage``, which must have finished."""
    previous = _PREVIOUS[stage]
    path = out_dir / _STAGE_FILES[previous]
    manifest = load_manifest(out_dir)
    counts = manifest.stages.get(previous) if manifest is not None else None
    if not path.exists() or counts is None:
        raise DetoxError(
            f"{path} not found or unfinished",
            f"run the {previous} stage into {out_dir} first",
        )
    if not counts.complete:
        raise DetoxError(
            f"the '{previous}' stage in {out_dir} did not finish",
            f"rerun the {previous} stage to complete it",
        )
    return [r for r in read_stage(path) if r.kept]


def _finish(
    out_dir: Path,
    stage: StageName,
    config: SynthesisConfig,
    ids: Sequence[str],
    scorer_from_continuations: bool = False,
    detector: str | None = None,
) -> StageCounts:
    records = _stage_records(out_dir / _STAGE_FILES[stage], ids)
    counts = count_stage(records, len(ids), config.stage_settings(stage))
    scorer = None
    if scorer_from_continuations:
        labels = {f"{s.scorer}@{s.version}" for r in records for s in r.continuation_scores}
        scorer = labels.pop() if len(labels) == 1 else None
    update_manifest(
        out_dir, stage, counts, config, score_labels(records), scorer=scorer, detector=detector
    )
    return counts


# -- stage 1: detect and mask ------------------------------------------------------------------


def _prompt_scores(prompts: Sequence[Prompt], parts: Components) -> list[Score | None]:
    """The prompt's own score from its file where present, else the scorer's."""
    scores: list[Score | None] = [
        Score(value=p.toxicity, scorer=FILE_SCORER, version=Path(p.source).name if p.source else "")
        if p.toxicity is not None
        else None
        for p in prompts
    ]
    unscored = [i for i, s in enumerate(scores) if s is None]
    if unscored:
        fresh = score_texts(parts.scorer(), [prompts[i].text for i in unscored])
        for i, score in zip(unscored, fresh, strict=True):
            scores[i] = score
    return scores


def detect_records(
    prompts: Sequence[Prompt], parts: Components, config: SynthesisConfig
) -> list[SynthesisRecord]:
    """Score the prompts, and mask the toxic ones (``> toxic_threshold``) from the detector."""
    scores = _prompt_scores(prompts, parts)
    records: list[SynthesisRecord] = []
    for prompt, score in zip(prompts, scores, strict=True):
        record = SynthesisRecord(
            id=prompt.id, prompt=prompt.text, stage="detect", prompt_score=score
        )
        if score is None or score.value is None:
            record.dropped = MISSING_PROMPT_SCORE
        else:
            record.toxic = score.value > config.toxic_threshold
        records.append(record)
    toxic = [r for r in records if r.toxic]
    if toxic:
        predictions = parts.detector().predict([r.prompt for r in toxic])
        for record, prediction in zip(toxic, predictions, strict=True):
            result = mask_prompt(record.prompt, prediction, config.mask_threshold, config.no_span)
            record.masked, record.mask_spans = result.masked, result.spans
            record.mask_fallback, record.dropped = result.fallback, result.dropped
    return records


@locks_folder("out_dir")
def run_detect(
    prompts: Sequence[Prompt],
    out_dir: Path,
    parts: Components,
    config: SynthesisConfig,
    show_progress: bool = True,
) -> StageCounts:
    """Stage 1: prompts → ``stage1_masked.jsonl``."""
    start_stage(out_dir, "detect", config)
    with JsonlWriter(out_dir / STAGE1_FILE, key=record_key) as writer, progress_bar() as bar:
        task = bar.add_task("detect + mask", total=len(prompts), visible=show_progress)
        for block in _blocks(prompts, DETECT_BATCH):
            todo = [p for p in block if p.id not in writer.done]
            for record in detect_records(todo, parts, config) if todo else []:
                writer.write(record)
            bar.advance(task, len(block))
    ids = [p.id for p in prompts]
    return _finish(out_dir, "detect", config, ids, detector=parts.detector_label())


# -- stage 2: rephrase ---------------------------------------------------------------------------


@locks_folder("out_dir")
def run_rephrase(
    out_dir: Path, parts: Components, config: SynthesisConfig, show_progress: bool = True
) -> StageCounts:
    """Stage 2: masked toxic prompts → ``stage2_rephrased.jsonl`` (non-toxic ones pass through)."""
    inputs = stage_inputs(out_dir, "rephrase")
    start_stage(out_dir, "rephrase", config)
    with JsonlWriter(out_dir / STAGE2_FILE, key=record_key) as writer, progress_bar() as bar:
        task = bar.add_task("rephrase", total=len(inputs), visible=show_progress)
        for block in _blocks(inputs, config.batch_size):
            if all(r.id in writer.done for r in block):
                bar.advance(task, len(block))
                continue
            toxic = [r for r in block if r.toxic]
            outcomes: dict[str, RephraseOutcome] = {}
            if toxic:
                results = rephrase_with_retries(
                    [(str(r.masked), r.prompt) for r in toxic],
                    parts.rephraser(),
                    parts.scorer(),
                    parts.similarity(),
                    config,
                    seed=stable_seed(config.seed, "rephrase", *(r.id for r in toxic)),
                )
                outcomes = {r.id: o for r, o in zip(toxic, results, strict=True)}
            for record in block:
                if record.id in writer.done:
                    continue
                update: dict[str, object] = {"stage": "rephrase"}
                if record.id in outcomes:
                    o = outcomes[record.id]
                    update.update(
                        rephrased=o.rephrased,
                        rephrased_score=o.score,
                        similarity=o.similarity,
                        attempts=o.attempts,
                        dropped=o.dropped,
                    )
                writer.write(record.model_copy(update=update))
            bar.advance(task, len(block))
    return _finish(out_dir, "rephrase", config, [r.id for r in inputs])


# -- stage 3: continuations ----------------------------------------------------------------------


@locks_folder("out_dir")
def run_continue(
    out_dir: Path, parts: Components, config: SynthesisConfig, show_progress: bool = True
) -> StageCounts:
    """Stage 3: K scored continuations of each (rephrased) prompt → ``stage3_continuations.jsonl``."""
    inputs = stage_inputs(out_dir, "continue")
    start_stage(out_dir, "continue", config)
    with JsonlWriter(out_dir / STAGE3_FILE, key=record_key) as writer, progress_bar() as bar:
        task = bar.add_task("continue", total=len(inputs), visible=show_progress)
        for block in _blocks(inputs, config.batch_size):
            if all(r.id in writer.done for r in block):
                bar.advance(task, len(block))
                continue
            lm = parts.lm()
            seed = stable_seed(config.seed, "continue", *(r.id for r in block))
            groups = sample_continuations(
                lm.model, lm.tokenizer, [r.source_text for r in block], config, seed
            )
            scores = score_groups(parts.scorer(), groups)
            for record, texts, group_scores in zip(block, groups, scores, strict=True):
                if record.id in writer.done:
                    continue
                writer.write(
                    record.model_copy(
                        update={
                            "stage": "continue",
                            "continuations": texts,
                            "continuation_scores": group_scores,
                        }
                    )
                )
            bar.advance(task, len(block))
    return _finish(
        out_dir, "continue", config, [r.id for r in inputs], scorer_from_continuations=True
    )


# -- stage 4: selection and chains ---------------------------------------------------------------


@locks_folder("out_dir")
def run_assemble(out_dir: Path, config: SynthesisConfig, show_progress: bool = True) -> StageCounts:
    """Stage 4: select positive/negatives and build the chains → ``train.jsonl`` (atomic)."""
    inputs = stage_inputs(out_dir, "assemble")
    chains: list[ChainRecord] = []
    outcomes: list[SynthesisRecord] = []
    with progress_bar() as bar:
        task = bar.add_task("assemble", total=len(inputs), visible=show_progress)
        for record in inputs:
            selection = select_for(record, config)
            outcome = record.model_copy(update={"stage": "assemble", "dropped": selection.dropped})
            if selection.dropped is None:
                chains.append(chain_record(record, selection))
            outcomes.append(outcome)
            bar.advance(task)
    atomic_write_text(out_dir / TRAIN_FILE, "".join(c.model_dump_json() + "\n" for c in chains))
    dropped = [o for o in outcomes if not o.kept]
    atomic_write_text(
        out_dir / STAGE4_DROPPED_FILE, "".join(o.model_dump_json() + "\n" for o in dropped)
    )
    counts = count_stage(outcomes, len(inputs), config.stage_settings("assemble"))
    update_manifest(out_dir, "assemble", counts, config)
    return counts


@locks_folder("out_dir")
def synthesize(
    prompts: Sequence[Prompt],
    out_dir: Path,
    parts: Components,
    config: SynthesisConfig,
    show_progress: bool = True,
) -> Manifest:
    """Run every stage in sequence into ``out_dir``; returns the final manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_detect(prompts, out_dir, parts, config, show_progress)
    run_rephrase(out_dir, parts, config, show_progress)
    run_continue(out_dir, parts, config, show_progress)
    run_assemble(out_dir, config, show_progress)
    manifest = load_manifest(out_dir)
    if manifest is None:  # pragma: no cover - every stage writes it
        raise RuntimeError("the manifest was not written")
    return manifest
