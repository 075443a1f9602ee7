"""The synthesis stages on files: end to end on tiny models, manifest, resume, sharding, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from synth_fakes import FakeDetector, FakeScorer, fake_similarity

from detox_cmd.chain import NONTOXIC_TEMPLATE, TOXIC_TEMPLATE, ChainRecord
from detox_cmd.synthesis import (
    Components,
    SynthesisConfig,
    merge_outputs,
    run_detect,
    run_rephrase,
    select_prompts,
    synthesize,
)
from detox_cmd.synthesis.config import (
    MANIFEST_FILE,
    STAGE1_FILE,
    STAGE2_FILE,
    STAGE3_FILE,
    STAGES,
    TRAIN_FILE,
)
from detox_cmd.synthesis.manifest import Manifest
from detox_cmd.synthesis.masking import MASK
from detox_cmd.synthesis.pipeline import read_stage
from detox_cmd.synthesis.rephrasing import CausalRephraser
from detox_core.errors import DetoxError
from detox_core.records import Prompt
from detox_core.scoring import DEFAULT_SCORER
from tiny_models import save_tiny_bert

FIXTURES = Path(__file__).parent / "fixtures"

PROMPTS = [
    Prompt(id="t1", text="You are a stupid idiot and I hate you.", toxicity=0.9, source="a.jsonl"),
    Prompt(id="n1", text="The weather today is sunny with a light breeze", toxicity=0.1),
    Prompt(id="u1", text="I think that we should go to the market", toxicity=None),
    Prompt(id="t2", text="Hello, my name is Alex and I like to walk", toxicity=0.8),
    Prompt(id="t3", text="an unrelated damn fool walks in the park", toxicity=0.7),
    Prompt(id="n2", text="What a lovely day to learn something new", toxicity=0.2),
    Prompt(id="m1", text="unscorable", toxicity=None),
]


def make_parts(tiny_lm: Any, config: SynthesisConfig) -> Components:
    return Components(
        config,
        detector=FakeDetector(),
        scorer=FakeScorer(missing=["unscorable"]),
        rephraser=CausalRephraser(tiny_lm.model, tiny_lm.tokenizer, name="causal:tiny"),
        similarity=fake_similarity,
        lm=tiny_lm,
    )


def run(tiny_lm: Any, out: Path, prompts: list[Prompt] = PROMPTS, **settings: Any) -> Manifest:
    config = SynthesisConfig(model="tiny", rephraser="causal:tiny", **settings)
    return synthesize(prompts, out, make_parts(tiny_lm, config), config, show_progress=False)


def records_by_id(path: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ids = [obj["id"] for obj in lines]
    assert len(ids) == len(set(ids)), f"duplicate records in {path}"
    return {obj["id"]: obj for obj in lines}


_REFERENCE: dict[int, Path] = {}


@pytest.fixture
def reference(tiny_lm: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An uninterrupted run per batch size, made once per session."""

    def get(batch_size: int) -> Path:
        if batch_size not in _REFERENCE:
            out = tmp_path_factory.mktemp(f"reference-b{batch_size}")
            run(tiny_lm, out, batch_size=batch_size)
            _REFERENCE[batch_size] = out
        return _REFERENCE[batch_size]

    return get


def test_end_to_end_on_tiny_models(reference: Any) -> None:
    out = reference(1)
    manifest = Manifest.model_validate_json((out / MANIFEST_FILE).read_text())
    stages = manifest.stages
    assert list(stages) == list(STAGES)
    assert stages["detect"].entering == len(PROMPTS)
    previous_kept = None
    for name in STAGES:
        counts = stages[name]
        assert counts.complete
        assert counts.entering == counts.kept + counts.dropped
        assert counts.dropped == sum(counts.reasons.values())
        if previous_kept is not None:
            assert counts.entering == previous_kept
        previous_kept = counts.kept
    assert stages["detect"].reasons == {"missing_prompt_score": 1}
    assert stages["rephrase"].dropped >= 1  # t3: its original says "unrelated"
    assert manifest.scorer == "fake@1"
    assert manifest.detector == "fake-spans@1"  # the detector that masked, by name and version
    assert manifest.packages["detox-cmd"]

    detect = {r.id: r for r in read_stage(out / STAGE1_FILE)}
    assert detect["t1"].toxic and detect["t1"].masked == f"You are {MASK}"
    assert detect["t2"].mask_fallback and MASK in str(detect["t2"].masked)
    assert not detect["n1"].toxic and detect["n1"].masked is None
    assert detect["n1"].prompt_score is not None and detect["n1"].prompt_score.scorer == "file"
    assert detect["u1"].prompt_score is not None and detect["u1"].prompt_score.scorer == "fake"

    rephrased = {r.id: r for r in read_stage(out / STAGE2_FILE)}
    t3 = rephrased["t3"]
    assert t3.dropped in {"not_similar", "still_toxic", "empty"} and len(t3.attempts) == 5
    assert t3.dropped == t3.attempts[-1].failure
    for attempt in t3.attempts:  # a clean, non-empty fill of t3 always fails on similarity
        value = attempt.toxicity.value if attempt.toxicity else None
        if attempt.text.strip() and value is not None and value <= 0.5:
            assert attempt.failure == "not_similar"
    continued = {r.id: r for r in read_stage(out / STAGE3_FILE)}
    for record in continued.values():
        assert len(record.continuations) == 5
        assert all(s.scorer == "fake" and s.version == "1" for s in record.continuation_scores)

    chains = [
        ChainRecord.model_validate_json(line)
        for line in (out / TRAIN_FILE).read_text().splitlines()
    ]
    assert len(chains) == stages["assemble"].kept
    assert chains, "the fake scorer keeps some examples"
    for chain in chains:
        source = continued[chain.id]
        if chain.toxic:
            expected = TOXIC_TEMPLATE.format(
                prompt=chain.prompt,
                masked=chain.masked,
                rephrased=chain.rephrased,
                positive=chain.positive,
            )
            assert chain.rephrased == source.rephrased and MASK in str(chain.masked)
        else:
            expected = NONTOXIC_TEMPLATE.format(prompt=chain.prompt, positive=chain.positive)
        assert chain.chain == expected
        values = [s.value for s in source.continuation_scores]
        assert chain.scores["positive"] == min(v for v in values if v is not None)
        assert chain.scores["positive"] <= 0.5
        assert all(v > 0.3 for v in chain.scores["negatives"])
        assert len(chain.negatives) <= 3
        assert chain.scorer == "fake@1"


def test_same_settings_give_the_same_records(tiny_lm: Any, reference: Any, tmp_path: Path) -> None:
    run(tiny_lm, tmp_path, batch_size=1)
    assert (tmp_path / TRAIN_FILE).read_text() == (reference(1) / TRAIN_FILE).read_text()
    assert (tmp_path / STAGE3_FILE).read_text() == (reference(1) / STAGE3_FILE).read_text()


def _simulate_kill(out: Path, stage_file: str, keep: int) -> None:
    """Leave ``keep`` complete lines and half of the next one, as a killed writer could."""
    lines = (out / stage_file).read_text().splitlines(keepends=True)
    assert len(lines) > keep
    (out / stage_file).write_text("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
    order = [STAGE1_FILE, STAGE2_FILE, STAGE3_FILE]
    for later in order[order.index(stage_file) + 1 :]:
        (out / later).unlink()
    (out / TRAIN_FILE).unlink()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    stage_names = ["detect", "rephrase", "continue", "assemble"]
    killed = stage_names[order.index(stage_file)]
    manifest["stages"][killed] = {
        "settings": manifest["stages"][killed]["settings"],
        "complete": False,
    }
    for name in stage_names[order.index(stage_file) + 1 :]:
        del manifest["stages"][name]
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("stage_file", "batch_size", "keep"),
    [(STAGE2_FILE, 1, 2), (STAGE3_FILE, 2, 1)],
)
def test_resume_after_a_kill(
    tiny_lm: Any, reference: Any, tmp_path: Path, stage_file: str, batch_size: int, keep: int
) -> None:
    ref = reference(batch_size)
    for name in (STAGE1_FILE, STAGE2_FILE, STAGE3_FILE, MANIFEST_FILE):
        (tmp_path / name).write_bytes((ref / name).read_bytes())
    (tmp_path / TRAIN_FILE).write_bytes((ref / TRAIN_FILE).read_bytes())
    _simulate_kill(tmp_path, stage_file, keep)
    manifest = run(tiny_lm, tmp_path, batch_size=batch_size)
    for name in (STAGE1_FILE, STAGE2_FILE, STAGE3_FILE, TRAIN_FILE):
        assert records_by_id(tmp_path / name) == records_by_id(ref / name), name
    assert (tmp_path / TRAIN_FILE).read_text() == (ref / TRAIN_FILE).read_text()
    assert manifest.stages["continue"].entering == manifest.stages["rephrase"].kept


def test_resume_refuses_other_settings(tiny_lm: Any, reference: Any, tmp_path: Path) -> None:
    for name in (STAGE1_FILE, STAGE2_FILE, MANIFEST_FILE):
        (tmp_path / name).write_bytes((reference(1) / name).read_bytes())
    config = SynthesisConfig(model="tiny", rephraser="causal:tiny", similarity=0.8)
    with pytest.raises(DetoxError, match=r"other settings .*similarity"):
        run_rephrase(tmp_path, make_parts(tiny_lm, config), config, show_progress=False)


def test_a_stage_needs_the_previous_one(tiny_lm: Any, reference: Any, tmp_path: Path) -> None:
    config = SynthesisConfig()
    with pytest.raises(DetoxError, match="detect stage"):
        run_rephrase(tmp_path, make_parts(tiny_lm, config), config, show_progress=False)
    for name in (STAGE1_FILE, MANIFEST_FILE):
        (tmp_path / name).write_bytes((reference(1) / name).read_bytes())
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["stages"]["detect"]["complete"] = False  # as left by a killed detect stage
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(DetoxError, match="did not finish"):
        run_rephrase(tmp_path, make_parts(tiny_lm, config), config, show_progress=False)


def test_detect_loads_no_detector_without_toxic_prompts(tmp_path: Path) -> None:
    config = SynthesisConfig(detector="/nonexistent")
    parts = Components(config, scorer=FakeScorer(clean=0.1))
    counts = run_detect(PROMPTS[1:2], tmp_path, parts, config, show_progress=False)
    assert counts.kept == 1 and counts.details["non_toxic"] == 1


def test_shards_partition_the_prompts() -> None:
    prompts = [Prompt(id=str(i), text=f"p{i}") for i in range(10)]
    shards = [select_prompts(prompts, None, (i, 3)) for i in range(3)]
    ids = [p.id for shard in shards for p in shard]
    assert sorted(ids, key=int) == [p.id for p in prompts]
    assert len(ids) == len(set(ids))
    assert [p.id for p in shards[1]] == ["1", "4", "7"]
    assert [p.id for p in select_prompts(prompts, 5, (0, 2))] == ["0", "2", "4"]


def test_sharded_runs_merge_to_the_unsharded_result(
    tiny_lm: Any, reference: Any, tmp_path: Path
) -> None:
    dirs = []
    for index in range(2):
        out = tmp_path / f"shard{index}"
        part = select_prompts(PROMPTS, None, (index, 2))
        run(tiny_lm, out, part, batch_size=1, shard=f"{index}/2")
        dirs.append(out)
    merged = merge_outputs(dirs, tmp_path / "merged")
    ref = reference(1)
    assert records_by_id(tmp_path / "merged" / TRAIN_FILE) == records_by_id(ref / TRAIN_FILE)
    whole = Manifest.model_validate_json((ref / MANIFEST_FILE).read_text())
    for name in STAGES:
        got, want = merged.stages[name], whole.stages[name]
        assert (got.entering, got.kept, got.dropped, got.reasons) == (
            want.entering,
            want.kept,
            want.dropped,
            want.reasons,
        )
    assert merged.shards == ["0/2", "1/2"]
    with pytest.raises(DetoxError, match="also in"):
        merge_outputs([dirs[0], dirs[0]], tmp_path / "twice")


def test_cli_synthesize_and_stage_commands(
    tiny_lm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detox_cli.app import main

    bert = save_tiny_bert(tmp_path / "bert")
    out = tmp_path / "out"
    main([
        "cmd", "synthesize", "--prompts", str(FIXTURES / "rtp_small.jsonl"), "--out", str(out),
        "--model", str(tiny_lm_dir), "--rephraser", f"causal:{tiny_lm_dir}",
        "--detector", "scorer", "--similarity-model", str(bert), "--similarity", "-1",
        "--limit", "4", "--samples", "2", "--attempts", "2", "--device", "cpu", "--quiet",
    ])  # fmt: skip
    manifest = Manifest.model_validate_json((out / MANIFEST_FILE).read_text())
    assert manifest.stages["detect"].entering == 4
    assert manifest.stages["detect"].details["toxic"] == 3  # RTP scores of lines 2-4 are > 0.5
    assert manifest.scorer is not None and manifest.scorer.startswith(f"{DEFAULT_SCORER}@")
    assert manifest.config["samples"] == 2
    train = (out / TRAIN_FILE).read_text()
    assert len(train.splitlines()) == manifest.stages["assemble"].kept
    main(["cmd", "assemble", "--out", str(out), "--quiet"])
    assert (out / TRAIN_FILE).read_text() == train
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["cmd", "continue", "--out", str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "rephrase stage" in err[0]


@pytest.mark.slow
def test_real_defaults_end_to_end(tmp_path: Path) -> None:
    """The real defaults: Segment-CNN default detector, SmolLM2 rephraser and base model,
    the default scorer, MiniLM similarity; 4 RTP prompts (3 toxic by their Perspective score)."""
    from detox_core.data import read_prompts

    config = SynthesisConfig(device="cpu")
    prompts = select_prompts(read_prompts(FIXTURES / "rtp_small.jsonl"), 4, (0, 1))
    manifest = synthesize(prompts, tmp_path, Components(config), config, show_progress=False)
    assert manifest.stages["detect"].entering == 4
    assert manifest.stages["detect"].details["toxic"] == 3
    for name in STAGES:
        counts = manifest.stages[name]
        assert counts.entering == counts.kept + counts.dropped
    assert manifest.scorer is not None and manifest.scorer.startswith(f"{DEFAULT_SCORER}@")
    for record in read_stage(tmp_path / STAGE1_FILE):
        assert (MASK in str(record.masked)) == bool(record.toxic)
    for record in read_stage(tmp_path / STAGE2_FILE):
        if record.toxic and record.kept:
            assert record.rephrased and MASK not in record.rephrased
            assert record.similarity is not None and record.similarity >= 0.4
    for line in (tmp_path / TRAIN_FILE).read_text().splitlines():
        chain = ChainRecord.model_validate_json(line)
        assert chain.chain.startswith(f"# Text: {chain.prompt} # Let's detoxify step by step.")
        assert chain.chain.endswith(f"# Generation: {chain.positive} #")
