"""One RealToxicityPrompts evaluation run (METHODS §2.8): resumable, and data-parallel.

Steps, each skipping work already on disk: read the prompts (scoring them when the file has no
prompt toxicity), generate with every method under the same chunk seeds, score every sample,
measure each continuation's perplexity under ``ppl_model``, and write the report. Under
``accelerate launch`` (or ``torchrun``) each process takes a share of whole chunks into
``DIR/shard-I-of-N/`` and rank 0 merges the shares into ``DIR`` and writes the report; chunk
seeds do not depend on the rank, so the result equals a single-process run.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from detox_core.data import read_prompts
from detox_core.generation import run_sampling
from detox_core.io import JsonlWriter
from detox_core.locking import output_lock
from detox_core.models import ModelOptions, load_model
from detox_core.parallel import ProcessGroup, current_group
from detox_core.records import Generation, Prompt, generation_key
from detox_core.scoring import ToxicityScorer, load_scorer
from detox_eval.methods import MethodModels, batch_decoder, check_methods, get_method
from detox_eval.rtp.merge import merge_runs
from detox_eval.rtp.outputs import write_report
from detox_eval.rtp.report import EvalReport
from detox_eval.rtp.settings import (
    PROMPT_SCORES_NAME,
    TASK,
    RtpManifest,
    RtpSettings,
    adds_runs,
)
from detox_eval.rtp.sharding import foreign_keys, shard_items, shard_prompts
from detox_eval.rtp.store import (
    add_perplexity,
    fill_prompt_toxicity,
    needs_perplexity,
    read_generations,
    score_generations,
    scorer_label,
    write_generations,
)
from detox_eval.rtp.sweep import plan_runs
from detox_eval.run_folder import GENERATIONS_NAME, Shard, open_run, shard_complete


def prompts_with_toxicity(
    prompts: list[Prompt],
    settings: RtpSettings,
    shard: Shard,
    scorer: ToxicityScorer,
    directory: Path,
) -> tuple[list[Prompt], str]:
    """The prompts with their toxicity: from the file where it has any, else the shard's own
    prompts scored with the scorer. Returns the prompts and that source."""
    if any(p.toxicity is not None for p in prompts):
        return prompts, "file"
    own = shard_prompts(prompts, settings.samples, settings.batch_size, shard)
    scored, source = fill_prompt_toxicity(own, scorer, directory / PROMPT_SCORES_NAME)
    toxicity = {p.id: p.toxicity for p in scored}
    merged = [p.model_copy(update={"toxicity": toxicity.get(p.id, p.toxicity)}) for p in prompts]
    return merged, source


def generate_all(
    prompts: list[Prompt],
    settings: RtpSettings,
    shard: Shard,
    models: MethodModels,
    manifest: RtpManifest,
    directory: Path,
) -> int:
    """Sample every method on the shard's items; returns how many samples were made now."""
    own = shard_items(prompts, settings.samples, settings.batch_size, shard)
    made = 0
    runs = plan_runs(settings.methods, settings.variants, settings.method)
    with JsonlWriter(directory / GENERATIONS_NAME, key=generation_key) as writer:
        for run in runs:
            if all((run.label, pid, k) in writer.done for pid, k in own):
                continue
            lm = models.for_method(run.method)  # load before the clock starts
            # Items of other shards count as done, so this shard decodes only its own chunks,
            # with the same batches and seeds as a single-process run.
            writer.done |= foreign_keys(
                prompts, settings.samples, settings.batch_size, shard, run.label
            )
            start = time.perf_counter()
            new = run_sampling(
                prompts,
                batch_decoder(get_method(run.method), lm, run.settings),
                samples=settings.samples,
                batch_size=settings.batch_size,
                seed=settings.seed,
                method=run.label,
                model_name=models.label(run.method),
                writer=writer,
                description=f"generating ({run.label})",
            )
            made += len(new)
            manifest.add_time(run.label, time.perf_counter() - start)
            manifest.save(directory)
    return made


def add_scores_and_perplexity(
    generations: list[Generation],
    settings: RtpSettings,
    scorer: ToxicityScorer,
    models: MethodModels,
    options: ModelOptions,
    path: Path,
) -> list[Generation]:
    """Score new samples and measure their perplexity, saving after each step."""
    generations, scored = score_generations(generations, scorer)
    if scored:
        write_generations(path, generations)
    if any(needs_perplexity(g, settings.ppl_model) for g in generations):
        lm = models.base() if settings.ppl_model == settings.model else None
        lm = lm or load_model(settings.ppl_model, options)
        generations, measured = add_perplexity(
            generations, lm.model, lm.tokenizer, settings.ppl_model, settings.batch_size
        )
        if measured:
            write_generations(path, generations)
    return generations


def run_share(
    settings: RtpSettings, directory: Path, shard: Shard, options: ModelOptions
) -> tuple[RtpManifest, list[Generation], int]:
    """Run (or resume) one process's share in ``directory``; returns the manifest, the share's
    scored generations and how many samples were made now."""
    scorer = load_scorer(settings.scorer, device=options.device)  # a bad spec fails first
    prompts = read_prompts(settings.prompts, limit=settings.limit)
    manifest = open_run(directory, TASK, settings, shard, extends=adds_runs)
    prompts, source = prompts_with_toxicity(prompts, settings, shard, scorer, directory)
    manifest.prompt_toxicity_source = source
    models = MethodModels(settings.model, settings.method, options)
    made = generate_all(prompts, settings, shard, models, manifest, directory)
    path = directory / GENERATIONS_NAME
    generations = add_scores_and_perplexity(
        read_generations(path), settings, scorer, models, options, path
    )
    manifest.scorer = scorer_label(scorer)
    manifest.complete = True
    manifest.save(directory)
    return manifest, generations, made


def run_rtp(
    settings: RtpSettings,
    out: Path,
    options: ModelOptions,
    group: ProcessGroup | None = None,
) -> tuple[EvalReport | None, int]:
    """Run (or resume) an evaluation into ``out``; returns the report (None on ranks other than
    0) and the number of samples this process generated now."""
    group = group or current_group()
    options = group.model_options(options)
    for run in plan_runs(settings.methods, settings.variants, settings.method):
        check_methods([run.method], settings.model, run.settings)
    if group.size == 1:
        with output_lock(out):
            manifest, generations, made = run_share(settings, out, Shard(), options)
            return write_report(out, generations, manifest), made
    shard = Shard(index=group.rank, count=group.size)
    with ExitStack() as locks:
        if group.rank == 0:  # the merged run folder is rank 0's; each shard folder its process's
            locks.enter_context(output_lock(out))
        shard_dir = out / shard.dirname
        locks.enter_context(output_lock(shard_dir))
        _, _, made = run_share(settings, shard_dir, shard, options)
        if group.rank != 0:
            return None, made
        shard_dirs = group.shard_dirs(out)
        group.wait_for(shard_dirs, lambda d: shard_complete(d, settings))
        manifest, generations = merge_runs(shard_dirs, out)
        return write_report(out, generations, manifest), made
