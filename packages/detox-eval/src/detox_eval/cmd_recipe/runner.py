"""Run (or resume) the CMD recipe in one folder: split, synthesize, train, evaluate, report.

Each stage resumes on its own (the synthesis stages, the trainer's checkpoints, the evaluation's
generations file), so a run killed anywhere continues where it stopped when the same command is
run again; ``recipe.json`` records which stages finished, their counts and wall time. Under
``accelerate launch`` the synthesis, training and evaluation run data-parallel; rank 0 splits the
prompts and writes the manifest and the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from detox_core.data import read_prompts
from detox_core.models import ModelOptions
from detox_core.parallel import ProcessGroup, current_group
from detox_eval.cmd_recipe.config import RecipeConfig, RecipeLayout, RecipeStage
from detox_eval.cmd_recipe.manifest import RecipeManifest, open_recipe
from detox_eval.cmd_recipe.report import write_recipe_report
from detox_eval.cmd_recipe.split import split_prompts, write_split

Say = Callable[[str], None]


def _split(config: RecipeConfig, layout: RecipeLayout) -> dict[str, Any]:
    prompts = read_prompts(config.prompts)
    split = split_prompts(prompts, config.split)
    write_split(split, layout.split)
    threshold = config.split.toxic_threshold
    return {
        "source_prompts": len(prompts),
        "unscored": split.unscored,
        "train": len(split.train),
        "train_toxic": sum(1 for p in split.train if (p.toxicity or 0.0) > threshold),
        "eval": len(split.eval),
        "eval_toxic": sum(1 for p in split.eval if (p.toxicity or 0.0) > threshold),
    }


def _synthesize(
    config: RecipeConfig, layout: RecipeLayout, group: ProcessGroup, show_progress: bool
) -> dict[str, Any] | None:
    from detox_cmd.synthesis import Components, synthesize
    from detox_cmd.synthesis.parallel import synthesize_data_parallel

    prompts = read_prompts(layout.train_prompts)
    synthesis = config.synthesis
    if group.size > 1:
        device = group.model_options(ModelOptions(device=synthesis.device)).device
        synthesis = synthesis.model_copy(update={"device": device})
        manifest = synthesize_data_parallel(
            prompts, layout.synthesis, synthesis, group, show_progress
        )
        if manifest is None:
            return None
    else:
        manifest = synthesize(
            prompts, layout.synthesis, Components(synthesis), synthesis, show_progress
        )
    counts: dict[str, Any] = {f"{name}_kept": stage.kept for name, stage in manifest.stages.items()}
    counts["chains"] = manifest.stages["assemble"].kept if "assemble" in manifest.stages else 0
    counts["scorer"] = manifest.scorer
    return counts


def _wait_for_chains(layout: RecipeLayout, group: ProcessGroup) -> None:
    """Ranks other than 0 wait until rank 0 has merged the synthesized chains."""
    group.wait_for([layout.root], lambda root: _stage_done(RecipeLayout(root), "synthesize"))


def _stage_done(layout: RecipeLayout, stage: RecipeStage) -> bool:
    try:
        text = layout.manifest.read_text(encoding="utf-8")
        return RecipeManifest.model_validate_json(text).stages[stage].done
    except (OSError, ValueError, KeyError):
        return False


def _train(config: RecipeConfig, layout: RecipeLayout, show_progress: bool) -> dict[str, Any]:
    from detox_cmd.training import train
    from detox_cmd.training.checkpoint import list_checkpoints

    started = bool(list_checkpoints(layout.train / "checkpoints"))
    result = train(config.train.model_copy(update={"resume": started}), show_progress=show_progress)
    last = result.last
    return {
        "steps": result.steps,
        "tokens": result.tokens,
        "tokens_per_second": result.tokens_per_second,
        "last_lm": None if last is None else last.lm,
        "last_cl": None if last is None else last.cl,
    }


def _evaluate(
    config: RecipeConfig, layout: RecipeLayout, options: ModelOptions, group: ProcessGroup
) -> dict[str, Any] | None:
    from detox_eval.rtp.runner import run_rtp

    report, _ = run_rtp(config.eval, layout.eval, options, group)
    if report is None:
        return None
    return {"methods": list(report.methods)}


def run_recipe(
    config: RecipeConfig,
    out: Path,
    *,
    options: ModelOptions | None = None,
    stop_after: RecipeStage | None = None,
    show_progress: bool = True,
    say: Say = lambda _: None,
) -> RecipeManifest | None:
    """Run every stage not yet done (up to ``stop_after``); the manifest on rank 0, else None."""
    from detox_core.locking import output_lock

    layout = RecipeLayout(out)
    group = current_group()
    options = options or ModelOptions(device=config.synthesis.device, dtype=config.synthesis.dtype)
    main = group.rank == 0
    with ExitStack() as locks:
        manifest: RecipeManifest | None = None
        if main:
            locks.enter_context(output_lock(layout.root))
            manifest = open_recipe(layout, config)
        else:
            group.wait_for([layout.root], lambda root: RecipeLayout(root).manifest.exists())

        def stage(name: RecipeStage, work: Callable[[], dict[str, Any] | None]) -> bool:
            """Run ``work`` unless done; record it on rank 0; False when the run stops here."""
            done = _stage_done(layout, name)
            if not done:
                if name != "split":  # quick; a bad split is then the only line printed
                    say(f"recipe: {name}")
                started = time.perf_counter()
                counts = work()
                if manifest is not None:
                    status = manifest.stages[name]
                    status.seconds += time.perf_counter() - started
                    status.counts = counts or {}
                    status.done = True
                    manifest.save(layout)
            return stop_after != name

        if main:
            if not stage("split", lambda: _split(config, layout)):
                return manifest
        else:
            group.wait_for([layout.root], lambda root: _stage_done(RecipeLayout(root), "split"))
        if not stage("synthesize", lambda: _synthesize(config, layout, group, show_progress)):
            return manifest
        if not main:
            _wait_for_chains(layout, group)
        if not stage("train", lambda: _train(config, layout, show_progress)):
            return manifest
        if not stage("eval", lambda: _evaluate(config, layout, options, group)):
            return manifest
        if manifest is not None:  # always rewritten: it also reads the stage folders
            write_recipe_report(layout, manifest)
            manifest.stages["report"].done = True
            manifest.save(layout)
        return manifest
