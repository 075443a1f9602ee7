"""``detox cmd synthesize`` as a data-parallel job: each process synthesizes its shard and rank 0
merges them into the output of a single-process run (same chains, same order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detox_cmd.synthesis import Components, SynthesisConfig, select_prompts, synthesize
from detox_cmd.synthesis.config import TRAIN_FILE
from detox_cmd.synthesis.parallel import shard_finished, synthesize_data_parallel
from detox_core.data import read_prompts
from detox_core.parallel import ProcessGroup
from tiny_models import save_tiny_bert

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def config(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SynthesisConfig:
    bert = save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")
    return SynthesisConfig(
        model=str(tiny_lm_dir),
        rephraser=f"causal:{tiny_lm_dir}",
        detector="scorer",
        scorer="profanity",
        similarity_model=str(bert),
        similarity=-1.0,
        samples=2,
        attempts=2,
        device="cpu",
    )


def test_two_processes_equal_one(config: SynthesisConfig, tmp_path: Path) -> None:
    prompts = read_prompts(FIXTURES / "rtp_small.jsonl", limit=4)
    single = tmp_path / "one"
    items = select_prompts(prompts, None, (0, 1))
    synthesize(items, single, Components(config), config, show_progress=False)

    out = tmp_path / "two"
    rank1 = synthesize_data_parallel(prompts, out, config, ProcessGroup(1, 2), False)
    assert rank1 is None and not (out / TRAIN_FILE).exists()
    merged = synthesize_data_parallel(prompts, out, config, ProcessGroup(0, 2), False)
    assert merged is not None and merged.shards == ["0/2", "1/2"]
    assert (out / TRAIN_FILE).read_text() == (single / TRAIN_FILE).read_text()
    whole = merged.stages["detect"]
    assert whole.entering == 4
    assert merged.config == config.model_dump(mode="json")


def test_a_shard_of_other_settings_is_not_finished(config: SynthesisConfig, tmp_path: Path) -> None:
    prompts = read_prompts(FIXTURES / "rtp_small.jsonl", limit=2)
    shard = config.model_copy(update={"shard": "0/1"})
    synthesize(prompts, tmp_path, Components(shard), shard, show_progress=False)
    assert shard_finished(tmp_path, shard)
    assert not shard_finished(tmp_path, shard.model_copy(update={"samples": 3}))
    assert not shard_finished(tmp_path / "missing", shard)
