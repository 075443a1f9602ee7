"""The generations file of an evaluation run, and the steps that fill in its scores.

Samples are appended to ``generations.jsonl`` as they are decoded (``JsonlWriter``, resumable).
Scoring and perplexity then fill in each record's ``toxicity`` and ``extras["ppl"]`` and the file
is rewritten atomically, so a rerun finds that work done and skips it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detox_core.io import JsonlWriter, atomic_write_text, iter_jsonl, read_jsonl_records
from detox_core.perplexity import continuation_perplexity
from detox_core.progress import progress_bar
from detox_core.records import Generation, Prompt, Score
from detox_core.scoring import ToxicityScorer, score_texts

SCORE_BATCH = 64
PPL_KEY = "ppl"


def scorer_label(scorer: ToxicityScorer) -> str:
    """``name@version`` of a scorer."""
    return f"{scorer.name}@{scorer.version}"


def read_generations(path: Path) -> list[Generation]:
    """All generation records of a run (an absent file is an empty run)."""
    return read_jsonl_records(path, Generation) if path.exists() else []


def write_generations(path: Path, generations: Sequence[Generation]) -> None:
    """Rewrite the generations file atomically."""
    lines = (g.model_dump_json() for g in generations)
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def _needs_score(gen: Generation, scorer: ToxicityScorer) -> bool:
    score = gen.toxicity
    return score is None or (score.scorer, score.version) != (scorer.name, scorer.version)


def score_generations(
    generations: Sequence[Generation], scorer: ToxicityScorer, batch_size: int = SCORE_BATCH
) -> tuple[list[Generation], int]:
    """Score every record not yet scored by ``scorer``; returns the records and how many changed."""
    result = list(generations)
    todo = [i for i, g in enumerate(result) if _needs_score(g, scorer)]
    with progress_bar() as progress:
        task = progress.add_task(f"scoring ({scorer.name})", total=len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            scores = score_texts(scorer, [result[i].text for i in chunk])
            for i, score in zip(chunk, scores, strict=True):
                result[i] = result[i].model_copy(update={"toxicity": score})
            progress.advance(task, len(chunk))
    return result, len(todo)


def fill_prompt_toxicity(
    prompts: Sequence[Prompt], scorer: ToxicityScorer, path: Path
) -> tuple[list[Prompt], str]:
    """Prompt toxicity from the file where it has any; otherwise scored with ``scorer``.

    Scored prompts are kept in ``path`` (JSONL of ``{"id", "toxicity"}``, resumable). Returns the
    prompts and the source of their toxicity: ``file`` or the scorer's ``name@version``.
    """
    if any(p.toxicity is not None for p in prompts):
        return list(prompts), "file"
    label = scorer_label(scorer)
    with JsonlWriter(path, key=lambda o: (o["id"], o["scorer"])) as writer:
        todo = [p for p in prompts if (p.id, label) not in writer.done]
        for start in range(0, len(todo), SCORE_BATCH):
            chunk = todo[start : start + SCORE_BATCH]
            for prompt, score in zip(
                chunk, score_texts(scorer, [p.text for p in chunk]), strict=True
            ):
                writer.write({"id": prompt.id, "scorer": label, "score": score.model_dump()})
    known: dict[str, float | None] = {}
    for _, obj in iter_jsonl(path):
        if obj["scorer"] == label:
            known[obj["id"]] = Score.model_validate(obj["score"]).value
    return [p.model_copy(update={"toxicity": known.get(p.id)}) for p in prompts], label


def continuation_token_count(model: Any, tokenizer: Any, text: str) -> int:
    """How many tokens of a continuation ``continuation_perplexity`` scores.

    The continuation is encoded on its own; inputs longer than the model's context keep at most
    ``max_position_embeddings - 1`` continuation tokens.
    """
    count = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
    limit = getattr(model.config, "max_position_embeddings", None)
    return min(count, limit - 1) if isinstance(limit, int) and limit > 0 else count


def needs_perplexity(gen: Generation, ppl_model: str) -> bool:
    """True when the record has no perplexity under ``ppl_model`` yet."""
    entry = gen.extras.get(PPL_KEY)
    return not isinstance(entry, dict) or entry.get("model") != ppl_model


def add_perplexity(
    generations: Sequence[Generation],
    model: Any,
    tokenizer: Any,
    ppl_model: str,
    batch_size: int = 8,
) -> tuple[list[Generation], int]:
    """Store each continuation's perplexity given its prompt in ``extras["ppl"]``.

    The entry is ``{"model", "value", "tokens"}`` (value None for an empty continuation), so the
    token-weighted perplexity of any subset can be recomputed (``pooled_perplexity``).
    """
    result = list(generations)
    todo = [i for i, g in enumerate(result) if needs_perplexity(g, ppl_model)]
    if not todo:
        return result, 0
    ppl = continuation_perplexity(
        model,
        tokenizer,
        [result[i].prompt for i in todo],
        [result[i].text for i in todo],
        batch_size=batch_size,
        show_progress=True,
    )
    counts = [continuation_token_count(model, tokenizer, result[i].text) for i in todo]
    if sum(counts) != ppl.n_tokens:
        raise RuntimeError(f"token counts disagree: {sum(counts)} != {ppl.n_tokens}")
    for i, value, tokens in zip(todo, ppl.per_item, counts, strict=True):
        extras = dict(result[i].extras)
        extras[PPL_KEY] = {"model": ppl_model, "value": value, "tokens": tokens}
        result[i] = result[i].model_copy(update={"extras": extras})
    return result, len(todo)


def pooled_perplexity(generations: Sequence[Generation]) -> float | None:
    """Token-weighted perplexity over the records' stored per-item values (None if none)."""
    nll, tokens = 0.0, 0
    for gen in generations:
        entry = gen.extras.get(PPL_KEY)
        if not isinstance(entry, dict) or entry.get("value") is None or not entry.get("tokens"):
            continue
        n = int(entry["tokens"])
        nll += n * math.log(float(entry["value"]))
        tokens += n
    return math.exp(nll / tokens) if tokens else None
