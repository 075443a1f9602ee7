"""``recipe.json``: the settings of a recipe run, the package versions and each stage's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json, read_text
from detox_eval.cmd_recipe.config import STAGES, RecipeConfig, RecipeLayout
from detox_eval.run_folder import package_versions


class StageStatus(BaseModel):
    """One stage: finished or not, its wall time summed over sessions, and its counts."""

    done: bool = False
    seconds: float = 0.0
    counts: dict[str, Any] = Field(default_factory=dict)


def _new_stages() -> dict[str, StageStatus]:
    return {str(name): StageStatus() for name in STAGES}


class RecipeManifest(BaseModel):
    """The manifest of a recipe run folder."""

    config: RecipeConfig
    versions: dict[str, str] = Field(default_factory=package_versions)
    stages: dict[str, StageStatus] = Field(default_factory=_new_stages)
    updated: str = ""

    def save(self, layout: RecipeLayout) -> None:
        """Write ``recipe.json`` atomically."""
        self.updated = datetime.now(UTC).isoformat(timespec="seconds")
        layout.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(layout.manifest, self.model_dump(mode="json"))


def _changed(new: dict[str, Any], old: dict[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(new) | set(old)):
        a, b = new.get(key), old.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


def open_recipe(layout: RecipeLayout, config: RecipeConfig) -> RecipeManifest:
    """The run folder's manifest: resumed when the settings match, refused when they differ."""
    if not layout.manifest.exists():
        manifest = RecipeManifest(config=config)
        manifest.save(layout)
        return manifest
    try:
        manifest = RecipeManifest.model_validate_json(read_text(layout.manifest))
    except ValidationError as exc:
        raise DetoxError(
            f"{layout.manifest} is not a recipe manifest ({exc.error_count()} errors)",
            "choose another --out folder",
        ) from exc
    changed = _changed(config.comparable(), manifest.config.comparable())
    if changed:
        raise DetoxError(
            f"{layout.root} holds a recipe run with other settings: {', '.join(changed[:6])}",
            "rerun with the saved settings (recipe.json) to resume, or choose another --out",
        )
    return manifest
