"""The toxic layer T (METHODS §1.2): locate it from safe/unsafe pairs, save and load profiles.

Location follows the reference code (EasyEdit's DINM ``_locate_toxic_layer``): the safe and the
unsafe response (no prompt) go through the model as one padded batch of 2 (the tokenizer's padding
side, left for detox-loaded tokenizers); for each hidden state l = 1..N the distance is the
Frobenius norm of ``h_l(safe) - h_l(unsafe)`` over all positions (padding included) and hidden
dimensions. Over several pairs the distances are averaged per layer, then
``T = argmax_l distance - offset``. The reference returns ``argmax - 1`` (``offset=1``, the
faithful default): ``hidden_states[l]`` is the output of block ``l - 1``, so the reference's T is
the 0-based index of the block whose output differs most, and DDSC then uses that number as a
hidden-state index, i.e. the input of that block. ``offset=0`` uses the hidden state that differs
most itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from detox_core.errors import DetoxError
from detox_core.io import read_json_model
from detox_core.progress import progress_bar

DEFAULT_PROFILE = "default.json"
REFERENCE_OFFSET = 1


class ToxicLayerProfile(BaseModel):
    """Where a model's safe and unsafe responses differ most, and the toxic layer derived from it.

    ``distances[i]`` is the mean over pairs of ``||h_l(safe) - h_l(unsafe)||_F`` for hidden state
    ``l = layers[i]`` (1..N); ``toxic_layer = layers[argmax] - offset`` is the hidden-state index
    DDSC uses as T.
    """

    model: str
    model_type: str = ""
    num_layers: int = Field(ge=1)
    hidden_size: int | None = None
    vocab_size: int | None = None
    toxic_layer: int = Field(ge=0)
    offset: int = Field(REFERENCE_OFFSET, ge=0, le=1)
    layers: list[int]
    distances: list[float]
    n_pairs: int = Field(ge=1)
    pair_toxic_layers: list[int] = Field(default_factory=list)
    source: str | None = None
    padding_side: str = "left"
    note: str = ""


def _model_shape(model: Any) -> dict[str, Any]:
    config = getattr(model, "config", model)
    return {
        "model_type": str(getattr(config, "model_type", "")),
        "num_layers": int(config.num_hidden_layers),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
    }


@torch.inference_mode()
def pair_distances(
    model: Any, tokenizer: Any, safe: str, unsafe: str, max_tokens: int = 2048
) -> torch.Tensor:
    """``||h_l(safe) - h_l(unsafe)||_F`` for l = 1..N (float32 ``[N]``), as one padded batch."""
    device = next(model.parameters()).device
    enc = tokenizer(
        [safe, unsafe],
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_tokens,
    ).to(device)
    outputs = model(**enc, output_hidden_states=True)
    states = torch.stack(outputs.hidden_states[1:]).float()  # [N, 2, L, H]
    distances: torch.Tensor = (states[:, 0] - states[:, 1]).flatten(1).norm(dim=1).cpu()
    return distances


def locate_toxic_layer(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    offset: int = REFERENCE_OFFSET,
    model_name: str = "",
    source: str | None = None,
    show_progress: bool = False,
) -> ToxicLayerProfile:
    """Locate T from ``(safe, unsafe)`` response pairs (one pair = per-instance location).

    ``offset=1`` keeps the reference's ``argmax - 1``; ``offset=0`` returns the argmax itself.
    """
    if not pairs:
        raise DetoxError("no safe/unsafe pairs to locate the toxic layer from", "check the file")
    if offset not in (0, 1):
        raise DetoxError(f"offset must be 0 or 1, not {offset}", "1 is the reference convention")
    shape = _model_shape(model)
    rows: list[torch.Tensor] = []
    with progress_bar() as progress:
        task = progress.add_task("locating", total=len(pairs), visible=show_progress)
        for safe, unsafe in pairs:
            rows.append(pair_distances(model, tokenizer, safe, unsafe))
            progress.advance(task)
    per_pair = torch.stack(rows)  # [P, N]
    mean = per_pair.mean(dim=0)
    toxic = int(mean.argmax()) + 1 - offset  # layers start at 1
    return ToxicLayerProfile(
        model=model_name or str(getattr(model.config, "_name_or_path", "")),
        toxic_layer=toxic,
        offset=offset,
        layers=list(range(1, shape["num_layers"] + 1)),
        distances=[float(x) for x in mean],
        n_pairs=len(pairs),
        pair_toxic_layers=[int(i) + 1 - offset for i in per_pair.argmax(dim=1)],
        source=source,
        padding_side=str(getattr(tokenizer, "padding_side", "left")),
        **shape,
    )


def load_profile(path: str | Path) -> ToxicLayerProfile:
    """Read a profile JSON written by the locator (cached until the file changes, so a decoder
    that resolves T for every batch reads it once)."""
    path = Path(path)
    if not path.is_file():
        raise DetoxError(
            f"profile not found: {path}",
            "write one with the toxic-layer locator (locate_toxic_layer)",
        )
    return _read_profile(*profile_file_key(path)).model_copy()


def profile_file_key(path: str | Path) -> tuple[str, int, int]:
    """A profile file's identity for caches: resolved path, mtime and size (-1, -1 when the
    file is missing), so a changed file is read again."""
    path = Path(path)
    if not path.is_file():
        return (str(path), -1, -1)
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_profile(path: str, mtime_ns: int, size: int) -> ToxicLayerProfile:
    return read_json_model(path, ToxicLayerProfile, "toxic-layer profile")


def load_default_profile() -> ToxicLayerProfile:
    """The profile shipped for the default model (see ``profiles/README.md``)."""
    return _default_profile().model_copy()


@functools.lru_cache(maxsize=1)
def _default_profile() -> ToxicLayerProfile:
    text = resources.files("detox_ddsc").joinpath("profiles", DEFAULT_PROFILE).read_text("utf-8")
    return ToxicLayerProfile.model_validate(json.loads(text))


def profile_mismatch(profile: ToxicLayerProfile, model: Any) -> str | None:
    """Why ``profile`` does not fit ``model`` (None when it does)."""
    shape = _model_shape(model)
    for key in ("num_layers", "hidden_size", "vocab_size"):
        mine, theirs = getattr(profile, key), shape[key]
        if mine is not None and theirs is not None and int(mine) != int(theirs):
            return f"{key.replace('_', ' ')} {mine} in the profile, {theirs} in this model"
    return None


def check_profile(profile: ToxicLayerProfile, model: Any, where: str) -> int:
    """Return the profile's toxic layer, or a DetoxError when it was made for another model."""
    why = profile_mismatch(profile, model)
    if why is not None:
        raise DetoxError(
            f"the toxic-layer profile {where} was computed for {profile.model!r} "
            f"({profile.num_layers} layers), not this model: {why}",
            "compute one for this model with the toxic-layer locator (locate_toxic_layer) "
            "or give the toxic layer explicitly",
        )
    return profile.toxic_layer
