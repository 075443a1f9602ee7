"""The default span detector: the shipped ``spans-minilm`` weights, else one trained on first use.

``default_detector()`` loads ``weights/spans-minilm`` (a LoRA adapter and heads on
all-MiniLM-L6-v2 trained on SemEval-2021 toxic spans; see its MODEL_CARD.md). Where that folder
is missing (a trimmed install), it falls back to training a Segment-CNN once on the shipped demo
data (``demo/tsd_demo.csv``, 1,381 SemEval training texts, CC0; a few minutes on a laptop CPU),
cached in ``cache_dir("detectors")/<name>``, where the name carries a hash of the demo data and
settings. To train on your own data, use ``detox cmd spans train`` and pass ``--detector DIR``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from detox_cmd.spans.dataset import SpanDataConfig
from detox_cmd.spans.detector import SpanDetector
from detox_cmd.spans.train import SpanTrainConfig, train_detector
from detox_cmd.spans.weights import CONFIG_FILE, SHIPPED_DETECTOR
from detox_core.paths import cache_dir
from detox_core.progress import stderr_console

DEMO_DATA = Path(__file__).parent / "demo" / "tsd_demo.csv"
DEMO_TRAIN_CONFIG = SpanTrainConfig(epochs=3, batch_size=32, lr=1e-4, device="auto")


def default_detector_name() -> str:
    """The cache folder name of the demo-trained fallback (changes with its data or settings)."""
    digest = hashlib.sha256(DEMO_DATA.read_bytes())
    digest.update(DEMO_TRAIN_CONFIG.model_dump_json(exclude={"device"}).encode())
    return f"segment-cnn-demo-{digest.hexdigest()[:12]}"


def demo_detector(device: str = "auto") -> SpanDetector:
    """A Segment-CNN trained on the demo data on first use, then cached."""
    target = cache_dir("detectors") / default_detector_name()
    if not (target / CONFIG_FILE).is_file():
        stderr_console.print(
            f"training the default span detector once on {DEMO_DATA.name} (cached in {target})"
        )
        trained = train_detector(
            SpanDataConfig(spans=[DEMO_DATA]),
            DEMO_TRAIN_CONFIG.model_copy(update={"device": device}),
        )
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        trained.detector.save(tmp, trained.metadata)
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    return SpanDetector.load(target, device)


def default_detector(device: str = "auto") -> SpanDetector:
    """The shipped span detector, or the demo-trained fallback where it is not installed."""
    if (SHIPPED_DETECTOR / CONFIG_FILE).is_file():
        return SpanDetector.load(SHIPPED_DETECTOR, device)
    return demo_detector(device)
