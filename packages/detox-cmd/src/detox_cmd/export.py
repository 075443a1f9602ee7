"""Merge a CMD adapter into its base model and save a standalone checkpoint (``--model DIR``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from detox_cmd.inference import find_adapter, load_cmd_model
from detox_cmd.training.checkpoint import replace_dir, temp_dir_for
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json
from detox_core.models import ModelOptions

EXPORT_MARKER = "detox_export.json"


def export_merged(
    adapter_dir: str | Path, out_dir: str | Path, options: ModelOptions | None = None
) -> Path:
    """Write base model + merged adapter (``merge_and_unload``) and the tokenizer to ``out_dir``.

    Merging runs in float32 on the CPU unless ``options`` say otherwise. The folder is written
    next to ``out_dir`` first and renamed into place; an earlier export there is replaced, any
    other non-empty folder is left alone (an error).
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_MARKER).exists():
        raise DetoxError(f"{out} exists and is not an earlier export", "choose another --out")
    adapter, info = find_adapter(adapter_dir)
    lm = load_cmd_model(adapter, options or ModelOptions(device="cpu", dtype="float32"))
    tmp = temp_dir_for(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lm.model.save_pretrained(str(tmp))
    lm.tokenizer.save_pretrained(str(tmp))
    atomic_write_json(
        tmp / EXPORT_MARKER,
        {
            "adapter": str(adapter.resolve()),
            "base_model": info.base_model,
            "lora_target_modules": info.lora_target_modules,
            "train_config": json.loads(info.config.model_dump_json()),
        },
    )
    replace_dir(tmp, out)
    return out
