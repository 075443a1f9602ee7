"""Prompt readers: RealToxicityPrompts JSONL, detox JSONL (``id``/``text``), or plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from detox_core.errors import DetoxError
from detox_core.io import iter_jsonl, iter_text_lines
from detox_core.records import Prompt


def _prompt_from_json(obj: dict[str, Any], path: Path, number: int) -> Prompt:
    where = f"{path}:{number}"
    raw = obj.get("prompt", obj.get("text"))
    toxicity = obj.get("prompt_toxicity", obj.get("toxicity"))
    if isinstance(raw, dict):  # RealToxicityPrompts: {"prompt": {"text": ..., "toxicity": ...}}
        toxicity = raw.get("toxicity")
        raw = raw.get("text")
    if not isinstance(raw, str):
        raise DetoxError(
            f"{where}: no prompt text (expected a 'prompt' or 'text' string)",
            "fix or remove that line",
        )
    if toxicity is not None and not isinstance(toxicity, int | float):
        raise DetoxError(f"{where}: toxicity must be a number or null", "fix that line")
    ident = obj.get("id", obj.get("prompt_id", obj.get("filename")))
    challenging = obj.get("challenging")
    return Prompt(
        id=str(ident) if ident is not None else f"{path.stem}-{number}",
        text=raw,
        toxicity=float(toxicity) if toxicity is not None else None,
        challenging=bool(challenging) if challenging is not None else None,
        source=str(path),
    )


def read_prompts(path: str | Path, limit: int | None = None) -> list[Prompt]:
    """Read prompts from ``.jsonl`` (RTP or ``{"id", "text"}``) or text (one prompt a line).

    Prompt ids must be unique: RTP records use their line number when they have no ``id``.
    """
    path = Path(path)
    if not path.is_file():
        raise DetoxError(f"prompts file not found: {path}", "check the path")
    prompts: list[Prompt] = []
    if path.suffix in {".jsonl", ".json"}:
        for number, obj in iter_jsonl(path):
            prompt = _prompt_from_json(obj, path, number)
            if "id" not in obj and "prompt_id" not in obj:
                prompt = prompt.model_copy(update={"id": f"{path.stem}-{number}"})
            prompts.append(prompt)
            if limit is not None and len(prompts) >= limit:
                break
    else:
        for number, text in iter_text_lines(path):
            if text.strip():
                prompts.append(Prompt(id=f"{path.stem}-{number}", text=text, source=str(path)))
            if limit is not None and len(prompts) >= limit:
                break
    seen: set[str] = set()
    for prompt in prompts:
        if prompt.id in seen:
            raise DetoxError(f"{path}: duplicate prompt id {prompt.id!r}", "make ids unique")
        seen.add(prompt.id)
    if not prompts:
        raise DetoxError(
            f"{path} holds no prompts", "add one prompt a line or one JSON object a line"
        )
    return prompts
