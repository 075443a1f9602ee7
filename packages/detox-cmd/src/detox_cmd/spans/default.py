"""The default span detector: trained once on the shipped demo data, then cached.

``default_detector()`` looks for ``cache_dir("detectors")/<name>``, where the name carries a hash
of the demo data and the demo training settings (changing either trains a new one). When it is
missing, a Segment-CNN on all-MiniLM-L6-v2 is trained on ``demo/tsd_demo.csv`` (1,381 SemEval
toxic-spans training texts, CC0) with a progress bar, which takes a few minutes on a laptop CPU,
and saved atomically into the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from detox_cmd.spans.dataset import SpanDataConfig
from detox_cmd.spans.detector import CONFIG_FILE, SpanDetector
from detox_cmd.spans.train import SpanTrainConfig, train_detector
from detox_core.paths import cache_dir
from detox_core.progress import stderr_console

DEMO_DATA = Path(__file__).parent / "demo" / "tsd_demo.csv"
DEMO_TRAIN_CONFIG = SpanTrainConfig(epochs=3, batch_size=32, lr=1e-4, device="auto")


def default_detector_name() -> str:
    """The cache folder name of the default detector (changes with its data or settings)."""
    digest = hashlib.sha256(DEMO_DATA.read_bytes())
    digest.update(DEMO_TRAIN_CONFIG.model_dump_json(exclude={"device"}).encode())
    return f"segment-cnn-demo-{digest.hexdigest()[:12]}"


def default_detector(device: str = "auto") -> SpanDetector:
    """The default Segment-CNN span detector, trained on the demo data on first use."""
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
