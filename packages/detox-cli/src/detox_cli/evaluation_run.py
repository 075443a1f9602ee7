"""One RealToxicityPrompts evaluation run (METHODS §2.8), resumable and shardable.

Steps, each skipping work already on disk: read the prompts (scoring them when the file has no
prompt toxicity), generate with every method under the same chunk seeds, score every sample,
measure each continuation's perplexity under ``--ppl-model``, and (unsharded runs only) write
the report. Shards write ``DIR/shard-I-of-N/`` and are joined by ``detox eval merge``.
"""

from __future__ import annotations

import time
from pathlib import Path

from detox_cli.evaluation_methods import (
    MethodModels,
    check_method_inputs,
    method_decoder,
    model_label,
)
from detox_core.data import read_prompts
from detox_core.errors import DetoxError
from detox_core.evaluation.outputs import write_report
from detox_core.evaluation.report import EvalReport
from detox_core.evaluation.settings import (
    GENERATIONS_NAME,
    PROMPT_SCORES_NAME,
    RtpSettings,
    RunManifest,
    Shard,
    check_same_settings,
    load_manifest,
)
from detox_core.evaluation.sharding import foreign_keys, shard_items, shard_prompts
from detox_core.evaluation.store import (
    add_perplexity,
    fill_prompt_toxicity,
    needs_perplexity,
    read_generations,
    score_generations,
    scorer_label,
    write_generations,
)
from detox_core.generation import run_sampling
from detox_core.io import JsonlWriter
from detox_core.models import ModelOptions, load_model
from detox_core.records import Generation, Prompt, generation_key
from detox_core.scoring import ToxicityScorer, load_scorer


def run_directory(out: Path, shard: Shard) -> Path:
    """Where a run writes: ``out`` itself, or ``out/shard-I-of-N`` for a shard."""
    return out / shard.dirname if shard.count > 1 else out


def open_manifest(directory: Path, settings: RtpSettings, shard: Shard) -> RunManifest:
    """The run's manifest: resumed when it matches, refused when its settings differ (unless
    nothing was generated yet, e.g. after a typo in an option)."""
    manifest = load_manifest(directory)
    generations = directory / GENERATIONS_NAME
    started = generations.exists() and generations.stat().st_size > 0
    if manifest is None or not started:  # nothing generated yet: (re)start with these settings
        manifest = RunManifest(settings=settings, shard=shard)
    else:
        check_same_settings(settings, manifest.settings, directory)
        if manifest.shard != shard:
            raise DetoxError(
                f"{directory} holds shard {manifest.shard.dirname}, not {shard.dirname}",
                "use another --out directory",
            )
    directory.mkdir(parents=True, exist_ok=True)
    manifest.save(directory)
    return manifest


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
    manifest: RunManifest,
    directory: Path,
) -> int:
    """Sample every method on the shard's items; returns how many samples were made now."""
    own = shard_items(prompts, settings.samples, settings.batch_size, shard)
    made = 0
    with JsonlWriter(directory / GENERATIONS_NAME, key=generation_key) as writer:
        for method in settings.methods:
            if all((method, pid, k) in writer.done for pid, k in own):
                continue
            models.for_method(method)  # load before the clock starts
            # Items of other shards count as done, so this shard decodes only its own chunks,
            # with the same batches and seeds as an unsharded run.
            writer.done |= foreign_keys(
                prompts, settings.samples, settings.batch_size, shard, method
            )
            start = time.perf_counter()
            new = run_sampling(
                prompts,
                method_decoder(method, settings, models),
                samples=settings.samples,
                batch_size=settings.batch_size,
                seed=settings.seed,
                method=method,
                model_name=model_label(settings, method),
                writer=writer,
                description=f"generating ({method})",
            )
            elapsed = time.perf_counter() - start
            made += len(new)
            manifest.wall_time_s[method] = manifest.wall_time_s.get(method, 0.0) + elapsed
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
        if settings.ppl_model == settings.model:
            lm = models.base()
        else:
            lm = load_model(settings.ppl_model, options)
        generations, measured = add_perplexity(
            generations, lm.model, lm.tokenizer, settings.ppl_model, settings.batch_size
        )
        if measured:
            write_generations(path, generations)
    return generations


def run_rtp(
    settings: RtpSettings, out: Path, shard: Shard, options: ModelOptions
) -> tuple[Path, EvalReport | None, int]:
    """Run (or resume) an evaluation; returns its directory, the report (None for a shard) and
    the number of samples generated in this call."""
    check_method_inputs(settings)
    prompts = read_prompts(settings.prompts, limit=settings.limit)
    directory = run_directory(out, shard)
    manifest = open_manifest(directory, settings, shard)
    scorer = load_scorer(settings.scorer, device=options.device)
    prompts, source = prompts_with_toxicity(prompts, settings, shard, scorer, directory)
    manifest.prompt_toxicity_source = source
    models = MethodModels(settings, options)
    made = generate_all(prompts, settings, shard, models, manifest, directory)
    path = directory / GENERATIONS_NAME
    generations = add_scores_and_perplexity(
        read_generations(path), settings, scorer, models, options, path
    )
    manifest.scorer = scorer_label(scorer)
    manifest.complete = True
    manifest.save(directory)
    if shard.count > 1:
        return directory, None, made
    return directory, write_report(directory, generations, manifest), made
