"""Turning a prompt with scored continuations into a training chain (METHODS §2.5–2.6)."""

from __future__ import annotations

from detox_cmd.chain import ChainRecord, build_chain
from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.records import SynthesisRecord
from detox_cmd.synthesis.selection import Selection, select_continuations


def select_for(record: SynthesisRecord, config: SynthesisConfig) -> Selection:
    """Apply the selection rules to a record's continuation scores."""
    return select_continuations(
        [s.value for s in record.continuation_scores],
        record.continuations,
        toxic_threshold=config.toxic_threshold,
        negative_threshold=config.negative_threshold,
        max_negatives=config.max_negatives,
    )


def chain_record(record: SynthesisRecord, selection: Selection) -> ChainRecord:
    """The ``ChainRecord`` of a kept example.

    Continuations are stripped of surrounding whitespace (the templates put the spaces); the
    toxic template is used for toxic prompts (masked + rephrased), the non-toxic one otherwise.
    """
    if selection.positive is None:
        raise ValueError(f"{record.id}: no positive continuation to build a chain from")
    texts = [text.strip() for text in record.continuations]
    values = [s.value for s in record.continuation_scores]
    positive = texts[selection.positive]
    negatives = [texts[i] for i in selection.negatives]
    masked = record.masked if record.toxic else None
    rephrased = record.rephrased if record.toxic else None
    chain, cl_prefix = build_chain(record.prompt, positive, masked, rephrased)
    first = record.continuation_scores[selection.positive]
    scores = {
        "prompt": record.prompt_score.model_dump() if record.prompt_score else None,
        "rephrased": record.rephrased_score.model_dump() if record.rephrased_score else None,
        "similarity": record.similarity,
        "continuations": values,
        "positive": values[selection.positive],
        "negatives": [values[i] for i in selection.negatives],
    }
    return ChainRecord(
        id=record.id,
        prompt=record.prompt,
        prompt_toxicity=record.prompt_score.value if record.prompt_score else None,
        toxic=bool(record.toxic),
        masked=masked,
        rephrased=rephrased,
        positive=positive,
        negatives=negatives,
        chain=chain,
        cl_prefix=cl_prefix,
        scores=scores,
        scorer=f"{first.scorer}@{first.version}",
    )
