"""The record that flows through the synthesis stages, one JSONL line per prompt and stage."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from detox_core.records import Score


class RephraseAttempt(BaseModel):
    """One try at filling the masks and why it failed (``failure=None``: it passed)."""

    text: str
    toxicity: Score | None = None
    similarity: float | None = None
    failure: str | None = None


class SynthesisRecord(BaseModel):
    """A prompt's state after a stage; each stage fills its own fields.

    ``dropped`` names why the example left the pipeline at ``stage`` (``None``: kept). Dropped
    records are written too, so a resumed run does not redo them and counts add up.
    """

    id: str
    prompt: str
    stage: str
    prompt_score: Score | None = None
    toxic: bool | None = None
    dropped: str | None = None
    # detect
    masked: str | None = None
    mask_spans: list[tuple[int, int]] = Field(default_factory=list)
    mask_fallback: bool = False
    # rephrase
    rephrased: str | None = None
    rephrased_score: Score | None = None
    similarity: float | None = None
    attempts: list[RephraseAttempt] = Field(default_factory=list)
    # continue
    continuations: list[str] = Field(default_factory=list)
    continuation_scores: list[Score] = Field(default_factory=list)

    @property
    def kept(self) -> bool:
        """True when the example goes on to the next stage."""
        return self.dropped is None

    @property
    def source_text(self) -> str:
        """The text the base model continues: the rephrasing of a toxic prompt, else the prompt."""
        return self.rephrased if self.toxic and self.rephrased is not None else self.prompt


def record_key(obj: dict[str, Any]) -> str:
    """Resume key of a stage record (the prompt id)."""
    return str(obj["id"])
