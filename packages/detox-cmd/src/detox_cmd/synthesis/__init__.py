"""CMD data synthesis (METHODS §2.3–2.6): mask toxic spans, rephrase, continue, select, chain.

Stages, each its own resumable JSONL file in one output directory:
``detect`` → ``stage1_masked.jsonl``, ``rephrase`` → ``stage2_rephrased.jsonl``,
``continue`` → ``stage3_continuations.jsonl``, ``assemble`` → ``train.jsonl``; plus
``manifest.json``. See ``pipeline`` for resuming and sharding.
"""

from detox_cmd.synthesis.components import Components
from detox_cmd.synthesis.config import SynthesisConfig
from detox_cmd.synthesis.manifest import Manifest, StageCounts
from detox_cmd.synthesis.merge import merge_outputs
from detox_cmd.synthesis.pipeline import (
    run_assemble,
    run_continue,
    run_detect,
    run_rephrase,
    select_prompts,
    synthesize,
)
from detox_cmd.synthesis.records import SynthesisRecord

__all__ = [
    "Components",
    "Manifest",
    "StageCounts",
    "SynthesisConfig",
    "SynthesisRecord",
    "merge_outputs",
    "run_assemble",
    "run_continue",
    "run_detect",
    "run_rephrase",
    "select_prompts",
    "synthesize",
]
