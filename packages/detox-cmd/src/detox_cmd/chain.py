"""The CMD chain templates (METHODS §2.6), the training record, and the chain parser."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

INPUT_TEMPLATE = "# Text: {prompt} "
TOXIC_TEMPLATE = (
    "# Text: {prompt} # Let's detoxify step by step. # The context is toxic. "
    "# Detect the toxic segment within the context: {masked} "
    "# Detoxify the toxic segments: {rephrased} # Generation: {positive} #"
)
NONTOXIC_TEMPLATE = (
    "# Text: {prompt} # Let's detoxify step by step. # The context is non-toxic. "
    "# Generation: {positive} #"
)
GENERATION_MARKER = "# Generation:"
# The sampling temperature of the chain's generation part (the label and slots use the decode
# temperature). The adapter was trained on samples of the base model, so its own samples spread
# wider than the base model's; at 0.7 the continuations' perplexity under the base model matched
# plain sampling's on 60 dev prompts (benchmarks/results/cmd_temperature_dev60/).
GENERATION_TEMPERATURE = 0.7
CLOSING_MARKER = " #"


class ChainRecord(BaseModel):
    """One CMD training example, as written to ``train.jsonl`` by ``detox cmd synthesize``."""

    id: str
    prompt: str
    prompt_toxicity: float | None = None
    toxic: bool
    masked: str | None = None
    rephrased: str | None = None
    positive: str
    negatives: list[str] = Field(default_factory=list)
    chain: str
    cl_prefix: str
    scores: dict[str, Any] = Field(default_factory=dict)
    scorer: str = ""


def build_chain(
    prompt: str, positive: str, masked: str | None = None, rephrased: str | None = None
) -> tuple[str, str]:
    """Return ``(chain, cl_prefix)``: toxic template when ``masked``/``rephrased`` are given.

    ``cl_prefix`` is the chain up to and including ``# Generation:`` (the contrastive anchor's
    context).
    """
    if masked is not None and rephrased is not None:
        chain = TOXIC_TEMPLATE.format(
            prompt=prompt, masked=masked, rephrased=rephrased, positive=positive
        )
    else:
        chain = NONTOXIC_TEMPLATE.format(prompt=prompt, positive=positive)
    cut = chain.rindex(GENERATION_MARKER) + len(GENERATION_MARKER)
    return chain, chain[:cut]


def model_input(prompt: str) -> str:
    """The part of the chain the model is given (not in the LM loss)."""
    return INPUT_TEMPLATE.format(prompt=prompt)
