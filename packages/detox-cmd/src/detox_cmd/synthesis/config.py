"""Settings of the CMD synthesis pipeline (METHODS §2.3–2.6) and the names of its stage files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from detox_core.models import DTypeName
from detox_core.scoring import DEFAULT_SCORER

STAGE1_FILE = "stage1_masked.jsonl"
STAGE2_FILE = "stage2_rephrased.jsonl"
STAGE3_FILE = "stage3_continuations.jsonl"
TRAIN_FILE = "train.jsonl"
STAGE4_DROPPED_FILE = "stage4_dropped.jsonl"
MANIFEST_FILE = "manifest.json"

StageName = Literal["detect", "rephrase", "continue", "assemble"]
STAGES: tuple[StageName, ...] = ("detect", "rephrase", "continue", "assemble")

# The settings that change a stage's records; resuming a stage with other values is refused.
STAGE_SETTINGS: dict[StageName, tuple[str, ...]] = {
    "detect": ("detector", "scorer", "toxic_threshold", "mask_threshold", "no_span"),
    "rephrase": (
        "rephraser",
        "scorer",
        "toxic_threshold",
        "similarity",
        "attempts",
        "seed",
        "batch_size",
        "similarity_model",
    ),
    "continue": (
        "model",
        "scorer",
        "samples",
        "max_new_tokens",
        "top_p",
        "temperature",
        "seed",
        "batch_size",
    ),
    "assemble": ("toxic_threshold", "negative_threshold", "max_negatives"),
}


class SynthesisConfig(BaseModel):
    """Every knob of ``detox cmd synthesize``; defaults follow the reference code.

    - ``toxic_threshold``: a prompt is toxic (and masked), a rephrasing still toxic, and an
      example dropped as ``all_toxic`` when a score is ``> toxic_threshold`` (0.5).
    - ``mask_threshold``: a detector segment (adjacent token pair) is toxic when its probability
      is ``> mask_threshold`` (0.5 as in the reference code; the paper's lambda is 0.3).
    - ``no_span``: what to do with a toxic prompt where no segment passes ``mask_threshold``:
      ``most_toxic`` masks the single most probable pair (default), ``drop`` drops the prompt
      with reason ``no_toxic_span``.
    - ``rephraser``: ``prefix:default`` by default (each mask filled by the default LM continuing
      the text before it; the rest of the text kept exactly). ``causal:default`` (an instruction
      to the same LM) is available, but SmolLM2-135M passed the toxicity/similarity checks in
      only 2 of 16 tries against 11 of 16 for ``prefix:default`` in our measurement.
    - ``detector``: ``None`` for the default Segment-CNN, a trained detector directory, or
      ``scorer`` (each adjacent word pair scored by ``scorer``, as the reference labelled its
      segment data).
    - ``batch_size``: prompts per generation call. With 1 every prompt has its own seed, so the
      records do not depend on sharding; with more, the seed is fixed per block of prompts.
    """

    model_config = ConfigDict(frozen=True)

    model: str = "default"
    detector: str | None = None
    rephraser: str = "prefix:default"
    scorer: str = DEFAULT_SCORER
    similarity_model: str | None = None
    toxic_threshold: float = Field(0.5, ge=0, le=1)
    mask_threshold: float = Field(0.5, ge=0, le=1)
    no_span: Literal["most_toxic", "drop"] = "most_toxic"
    similarity: float = Field(0.4, ge=-1, le=1)
    attempts: int = Field(5, ge=1)
    samples: int = Field(5, ge=1)
    max_new_tokens: int = Field(20, ge=1)
    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)
    negative_threshold: float = Field(0.3, ge=0, le=1)
    max_negatives: int = Field(3, ge=0)
    seed: int = 0
    batch_size: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=1)
    shard: str | None = None
    device: str = "auto"
    dtype: DTypeName = "auto"

    def stage_settings(self, stage: StageName) -> dict[str, Any]:
        """The settings that determine ``stage``'s records."""
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in STAGE_SETTINGS[stage]}
