"""Option types shared with the CLI, kept free of torch so that help and completion stay fast."""

from __future__ import annotations

from typing import Literal

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]

__all__ = ["DTypeName"]
