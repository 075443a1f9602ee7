"""Readers for the datasets detox works with; each returns pydantic records."""

from detox_core.data.prompts import read_prompts

__all__ = ["read_prompts"]
