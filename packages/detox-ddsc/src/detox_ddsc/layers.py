"""Layer lists (METHODS §1.1): parse ``--layers`` and check it against the loaded model."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from detox_core.errors import DetoxError
from detox_ddsc.config import Mode

ALL_LAYERS = "all"


def _range_note(num_layers: int) -> str:
    return f"this model has hidden states 0..{num_layers}"


def parse_layers(
    spec: str | Sequence[int], num_layers: int, *, mode: Mode | None = None
) -> list[int]:
    """Parse and validate a layer list for a model with ``num_layers`` blocks.

    ``spec`` is comma-separated hidden-state indices without spaces (``"0,2,28,29,30"``), ``"all"``
    (MODE-1: ``0..N``) or a sequence of ints. The last entry is the end layer E, the others are the
    candidates C. Raises a one-line ``DetoxError`` naming the valid range for non-integers,
    duplicates, unsorted lists, indices outside ``0..N``, fewer than 2 entries, or (``mode="ddsc"``)
    fewer than 2 candidates.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == ALL_LAYERS:
            layers = list(range(num_layers + 1))
        else:
            layers = []
            for part in text.split(","):
                try:
                    layers.append(int(part))
                except ValueError:
                    raise DetoxError(
                        f"bad layer {part!r} in --layers {spec!r}: layers are integers",
                        f"{_range_note(num_layers)}; e.g. 0,2,{num_layers - 1},{num_layers}",
                    ) from None
    else:
        layers = [int(x) for x in spec]
    for layer in layers:
        if not 0 <= layer <= num_layers:
            raise DetoxError(
                f"layer {layer} is out of range: {_range_note(num_layers)}",
                f"use indices 0..{num_layers} in --layers",
            )
    for layer in layers:
        if layers.count(layer) > 1:
            raise DetoxError(
                f"layer {layer} is listed twice in --layers: {_range_note(num_layers)}",
                "list each layer once",
            )
    for first, second in itertools.pairwise(layers):
        if second < first:
            raise DetoxError(
                f"--layers must be increasing ({first} comes before {second}): "
                f"{_range_note(num_layers)}",
                "sort the list; the last entry is the end layer",
            )
    if len(layers) < 2:
        raise DetoxError(
            f"--layers needs at least 2 entries (candidates, then the end layer): "
            f"{_range_note(num_layers)}",
            f"e.g. 0,2,{num_layers - 1},{num_layers} or all",
        )
    if mode == "ddsc" and len(layers) < 3:
        raise DetoxError(
            f"ddsc mode needs at least 2 candidate layers before the end layer: "
            f"{_range_note(num_layers)}",
            "add a candidate layer or use --mode dola",
        )
    return layers


def check_toxic_layer(toxic_layer: int, num_layers: int) -> int:
    """Check that the toxic layer is a hidden-state index of this model."""
    if not 0 <= toxic_layer <= num_layers:
        raise DetoxError(
            f"toxic layer {toxic_layer} is out of range: {_range_note(num_layers)}",
            f"use --toxic-layer 0..{num_layers}",
        )
    return toxic_layer
