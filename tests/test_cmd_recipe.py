"""``detox cmd recipe``: the split, the whole recipe on tiny models, resume and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_helpers import one_thread  # noqa: F401

from detox_cmd.synthesis import SynthesisConfig
from detox_core.data import read_prompts
from detox_core.errors import DetoxError
from detox_eval.cmd_recipe.config import RecipeLayout, recipe_config
from detox_eval.cmd_recipe.manifest import RecipeManifest
from detox_eval.cmd_recipe.runner import run_recipe
from detox_eval.cmd_recipe.split import SplitConfig, split_prompts
from tiny_models import save_tiny_bert

FIXTURES = Path(__file__).parent / "fixtures"
RTP = FIXTURES / "rtp_small.jsonl"  # 10 toxic, 9 non-toxic, 1 without a score


def test_split_is_disjoint_balanced_and_keeps_eval_when_train_grows() -> None:
    prompts = read_prompts(RTP)
    small = split_prompts(prompts, SplitConfig(train_prompts=6, eval_prompts=3, seed=1))
    large = split_prompts(prompts, SplitConfig(train_prompts=12, eval_prompts=3, seed=1))
    for split in (small, large):
        train, held = {p.id for p in split.train}, {p.id for p in split.eval}
        assert not train & held and len(train) == len(split.train)
        assert all((p.toxicity or 0) > 0.5 for p in split.eval)
        assert split.unscored == 1
    assert sum((p.toxicity or 0) > 0.5 for p in small.train) == 3
    assert [p.id for p in small.eval] == [p.id for p in large.eval]
    other = split_prompts(prompts, SplitConfig(train_prompts=6, eval_prompts=3, seed=2))
    assert {p.id for p in other.eval} != {p.id for p in small.eval}
    mixed = split_prompts(prompts, SplitConfig(train_prompts=4, eval_prompts=8, eval_pool="all"))
    assert not {p.id for p in mixed.train} & {p.id for p in mixed.eval}


def test_split_refuses_what_the_file_cannot_give() -> None:
    prompts = read_prompts(RTP)
    with pytest.raises(DetoxError, match="10 toxic prompts, the split needs 11"):
        split_prompts(prompts, SplitConfig(train_prompts=2, eval_prompts=11))
    with pytest.raises(DetoxError, match="--train-prompts"):
        split_prompts(prompts, SplitConfig(train_prompts=19, eval_prompts=3))
    unscored = [p.model_copy(update={"toxicity": None}) for p in prompts]
    with pytest.raises(DetoxError, match="no prompt has a toxicity score"):
        split_prompts(unscored, SplitConfig(train_prompts=2, eval_prompts=2))


@pytest.fixture(scope="module")
def synthesis(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SynthesisConfig:
    bert = save_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")
    return SynthesisConfig(
        model=str(tiny_lm_dir),
        rephraser=f"causal:{tiny_lm_dir}",
        detector="scorer",
        scorer="profanity",
        similarity_model=str(bert),
        similarity=-1.0,
        toxic_threshold=0.9,  # keep most tiny-model continuations
        negative_threshold=0.0,
        samples=2,
        attempts=1,
        batch_size=4,
        device="cpu",
    )


def _config(out: Path, synthesis: SynthesisConfig, **train: Any) -> Any:
    return recipe_config(
        RTP,
        out,
        split=SplitConfig(train_prompts=6, eval_prompts=3),
        synthesis=synthesis,
        train={"max_steps": 2, "per_device_train_batch_size": 2, "cl_anchor_tokens": 4, **train},
        eval_settings={"methods": ("vanilla", "cmd"), "samples": 2, "scorer": "profanity"},
    )


def test_recipe_end_to_end_resumes_between_stages(
    synthesis: SynthesisConfig, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    layout = RecipeLayout(out)
    config = _config(out, synthesis)
    first = run_recipe(config, out, stop_after="synthesize", show_progress=False)
    assert first is not None
    assert [n for n, s in first.stages.items() if s.done] == ["split", "synthesize"]
    assert first.stages["split"].counts["train_toxic"] == 3
    assert not layout.adapter.exists() and not layout.eval.exists()
    chains = (layout.chains).read_text()

    # "killed" after synthesis: the same command goes on from training
    done = run_recipe(config, out, show_progress=False)
    assert done is not None and all(s.done for s in done.stages.values())
    assert layout.chains.read_text() == chains  # synthesis was not redone
    assert (layout.adapter / "adapter_config.json").exists()
    saved = RecipeManifest.model_validate_json(layout.manifest.read_text())
    assert saved.config == config and saved.stages["train"].counts["steps"] == 2

    train_ids = {json.loads(line)["id"] for line in layout.train_prompts.read_text().splitlines()}
    eval_ids = {json.loads(line)["id"] for line in layout.eval_prompts.read_text().splitlines()}
    chain_ids = {json.loads(line)["id"] for line in chains.splitlines()}
    generations = [json.loads(line) for line in (layout.eval / "generations.jsonl").open()]
    assert chain_ids <= train_ids and not train_ids & eval_ids
    assert {g["prompt_id"] for g in generations} == eval_ids
    assert {g["method"] for g in generations} == {"vanilla", "cmd"}
    assert all("malformed" in g["extras"] for g in generations if g["method"] == "cmd")

    report = layout.report.read_text()
    assert "| vanilla |" in report and "| cmd |" in report and "EMT ratio" in report
    assert "3 eval prompts (3 toxic)" in report and "profanity@" in report
    assert "![losses](train/losses.png)" in report and (layout.train / "losses.png").exists()


def test_recipe_refuses_other_settings_in_the_same_folder(
    synthesis: SynthesisConfig, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    run_recipe(_config(out, synthesis), out, stop_after="split", show_progress=False)
    with pytest.raises(DetoxError, match=r"train\.learning_rate"):
        run_recipe(_config(out, synthesis, learning_rate=1e-3), out, show_progress=False)


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from detox_cli.app import main

    for extra, needle in (
        (["--stop-after", "nope"], "--stop-after"),
        (["--eval-prompts", "50"], "--eval-prompts"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["cmd", "recipe", "--prompts", str(RTP), "--out", str(tmp_path / "o"), *extra])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
