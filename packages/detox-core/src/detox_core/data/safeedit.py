"""SafeEdit JSON (zjunlp): a list of items with spaced keys, read through pydantic aliases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detox_core.errors import DetoxError
from detox_core.io import iter_jsonl, read_text


class GeneralizationTest(BaseModel):
    """The four generalization inputs of an item (DG_onlyQ, DG_otherA, DG_otherQ, DG_otherAQ)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    only_harmful_question: str = Field(alias="test input of only harmful question")
    other_attack_prompt: str = Field(alias="test input of other attack prompt input")
    other_question: str = Field(alias="test input of other question input")
    other_questions_and_attack_prompts: str = Field(
        alias="test input of other questions and attack prompts"
    )
    attack_category: str | None = None
    attack_name: str | None = None


class KnowledgeConstrain(BaseModel):
    """An unrelated question and answer whose output should not change when editing (DINM)."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    answer: str


class SafeEditItem(BaseModel):
    """One SafeEdit instance; ``model_dump(by_alias=True)`` gives back the original keys."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: int
    unsafety_category: str = Field(alias="unsafety category")
    adversarial_prompt: str = Field(alias="adversarial prompt")
    question: str
    attack_category: str = Field(alias="attack category")
    attack_name: str = Field(alias="attack name")
    unsafe_generation: str = Field(alias="unsafe generation")
    safe_generation: str = Field(alias="safe generation")
    generalization_test: GeneralizationTest = Field(alias="generalization test")
    knowledge_constrain: KnowledgeConstrain = Field(alias="knowledge constrain")

    @property
    def generalization_inputs(self) -> dict[str, str]:
        """The generalization inputs under their metric names (METHODS §1.6)."""
        test = self.generalization_test
        return {
            "DG_onlyQ": test.only_harmful_question,
            "DG_otherA": test.other_attack_prompt,
            "DG_otherQ": test.other_question,
            "DG_otherAQ": test.other_questions_and_attack_prompts,
        }


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _array_items_with_lines(text: str) -> list[tuple[int, Any]]:
    """The items of a top-level JSON array (already known to parse) with their start lines."""
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    index = _skip_space(text, 0) + 1  # past '['
    line, counted = 1, 0
    while True:
        index = _skip_space(text, index)
        if index >= len(text) or text[index] == "]":
            return items
        line += text.count("\n", counted, index)
        counted = index
        obj, index = decoder.raw_decode(text, index)
        items.append((line, obj))
        index = _skip_space(text, index)
        if index < len(text) and text[index] == ",":
            index += 1


def read_safeedit(path: str | Path, limit: int | None = None) -> list[SafeEditItem]:
    """Read SafeEdit items from a JSON list (the release format) or JSONL (one item a line);
    a file without any item is an error."""
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"file not found: {path}", "check the path")
    if path.suffix == ".jsonl":
        located = list(iter_jsonl(path))
    else:
        text = read_text(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DetoxError(
                f"{path}:{exc.lineno}: malformed JSON ({exc.msg})", "fix the file"
            ) from exc
        if not isinstance(data, list):
            raise DetoxError(f"{path}: expected a JSON list of SafeEdit items", "fix the file")
        located = _array_items_with_lines(text)
    items: list[SafeEditItem] = []
    for number, (line, obj) in enumerate(located, start=1):
        try:
            items.append(SafeEditItem.model_validate(obj))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            raise DetoxError(
                f"{path}:{line}: invalid SafeEdit item #{number} ({where}: {first['msg']})",
                "fix or remove that item",
            ) from exc
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DetoxError(f"{path} holds no SafeEdit items", "check the file")
    return items
