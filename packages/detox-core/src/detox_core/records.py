"""Pydantic records shared by every detox package (prompts, generations, scores)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Score(BaseModel):
    """One toxicity score with the scorer that produced it. ``value=None`` means missing."""

    model_config = ConfigDict(frozen=True)

    value: float | None
    scorer: str
    version: str

    @property
    def missing(self) -> bool:
        """True when the scorer could not produce a value."""
        return self.value is None


class Prompt(BaseModel):
    """A prompt to continue. ``toxicity`` is the prompt's own score where the source has one."""

    id: str
    text: str
    toxicity: float | None = None
    challenging: bool | None = None
    source: str | None = None


class Generation(BaseModel):
    """One sampled continuation of a prompt, as written by ``detox generate`` and friends."""

    prompt_id: str
    prompt: str
    sample: int = 0
    text: str
    method: str = "vanilla"
    model: str = ""
    seed: int | None = None
    prompt_toxicity: float | None = None
    toxicity: Score | None = None
    extras: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity used for resuming: (method, prompt id, sample index)."""
        return (self.method, self.prompt_id, self.sample)


def generation_key(obj: dict[str, Any]) -> tuple[str, str, int]:
    """The resume key of a generation stored as a dict."""
    return (str(obj.get("method", "vanilla")), str(obj["prompt_id"]), int(obj.get("sample", 0)))
