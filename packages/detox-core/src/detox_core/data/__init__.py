"""Readers for the datasets detox works with; each returns pydantic records."""

from detox_core.data.generations import read_generations
from detox_core.data.jigsaw import JigsawComment, read_jigsaw
from detox_core.data.prompts import read_prompts
from detox_core.data.safeedit import (
    GeneralizationTest,
    KnowledgeConstrain,
    SafeEditItem,
    read_safeedit,
)
from detox_core.data.toxic_spans import ToxicSpansExample, read_toxic_spans

__all__ = [
    "GeneralizationTest",
    "JigsawComment",
    "KnowledgeConstrain",
    "SafeEditItem",
    "ToxicSpansExample",
    "read_generations",
    "read_jigsaw",
    "read_prompts",
    "read_safeedit",
    "read_toxic_spans",
]
