"""tox-minilm: training on a tiny encoder, the LoRA merge, batching, versions, registry, shipped
weights (slow)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from detox_core.errors import DetoxError
from detox_core.scoring import load_scorer
from detox_core.scoring.minilm import HEAD_FILE, SHIPPED_WEIGHTS, ToxMiniLMScorer
from detox_core.scoring.minilm_train import TrainConfig, Trainer, split_records, train_scorer
from tiny_models import save_tiny_bert

TOXIC_WORDS = ["stupid", "idiot", "fool", "hate", "damn"]
NEUTRAL_WORDS = ["the", "weather", "is", "nice", "today", "we", "go", "to", "park", "market"]


def write_tiny_rtp(path: Path, n: int = 40, seed: int = 0) -> Path:
    """RTP-format records over the tiny vocabulary; toxicity grows with the toxic words."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(n):
            parts = {}
            for part in ("prompt", "continuation"):
                k = rng.randint(0, 2)
                words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(3, 8))]
                words += [rng.choice(TOXIC_WORDS) for _ in range(k)]
                rng.shuffle(words)
                parts[part] = {"text": " ".join(words), "toxicity": [0.05, 0.6, 0.9][k]}
            handle.write(json.dumps(parts) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def tiny_rtp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_rtp(tmp_path_factory.mktemp("rtp") / "rtp.jsonl")


def tiny_config(rtp: Path, encoder: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "rtp": rtp,
        "encoder": str(encoder),
        "epochs": 4,
        "batch_size": 8,
        "lr": 5e-3,
        "head_lr": 1e-2,
        "head_hidden": 16,
        "lora_r": 4,
        "max_length": 32,
    }
    return TrainConfig.model_validate(settings | overrides)


@pytest.fixture(scope="module")
def trained(tiny_rtp: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tox") / "weights"
    train_scorer(tiny_config(tiny_rtp, tiny_encoder), out, log=lambda _: None)
    return out


def test_split_is_by_record_seeded_and_disjoint() -> None:
    train, dev = split_records(100, 0.2, seed=3)
    assert len(dev) == 20 and len(train) == 80 and not set(train) & set(dev)
    assert split_records(100, 0.2, seed=3) == (train, dev)
    assert split_records(100, 0.2, seed=4) != (train, dev)


def test_training_loss_falls_and_writes_the_folder(tiny_rtp: Path, tiny_encoder: Path) -> None:
    trainer = Trainer(tiny_config(tiny_rtp, tiny_encoder), log=lambda _: None)
    assert len(trainer.dev) == 16 and len(trainer.train) == 64  # 8 / 32 records, 2 texts each
    result = trainer.fit()
    losses = [e.loss for e in result.epochs]
    assert losses[-1] < losses[0]
    assert result.dev is not None and result.dev.n == 16


def test_merged_lora_scorer_matches_the_trainer(
    tiny_rtp: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    trainer = Trainer(tiny_config(tiny_rtp, tiny_encoder, epochs=2), log=lambda _: None)
    result = trainer.fit()
    trainer.save(tmp_path / "w", result)
    texts = [e.text for e in trainer.dev]
    expected = trainer.predict(texts)
    scorer = ToxMiniLMScorer(tmp_path / "w", device="cpu", precision="fp32")
    got = scorer.score(texts)
    assert got == pytest.approx(expected, abs=1e-5)
    assert (
        sorted((tmp_path / "w").iterdir())
        and (tmp_path / "w" / "adapter_model.safetensors").is_file()
    )


def test_batched_equals_one_by_one_and_empty_is_missing(trained: Path) -> None:
    scorer = ToxMiniLMScorer(trained, device="cpu", precision="fp32")
    texts = ["you are a stupid idiot", "", "the weather is nice today", "   ", "we hate the park"]
    batched = scorer.score(texts)
    assert batched[1] is None and batched[3] is None
    for text, value in zip(texts, batched, strict=True):
        if value is not None:
            single = scorer.score([text])[0]
            assert single is not None and abs(single - value) < 1e-4
            assert 0.0 <= value <= 1.0
    assert scorer.score([]) == []


def test_bf16_autocast_stays_close_to_fp32(trained: Path) -> None:
    texts = ["you are a stupid idiot", "the weather is nice today", "we hate the park"]
    fp32 = ToxMiniLMScorer(trained, device="cpu", precision="fp32")
    bf16 = ToxMiniLMScorer(trained, device="cpu", precision="bf16")
    assert bf16.version == fp32.version + "-bf16"
    assert bf16.score(texts) == pytest.approx(fp32.score(texts), abs=2e-2)


def test_name_and_version_follow_the_weights(trained: Path, tmp_path: Path) -> None:
    scorer = load_scorer(f"tox-minilm:{trained}", device="cpu")
    assert scorer.name == f"tox-minilm:{trained.name}"
    digest = scorer.version.removesuffix("-bf16")
    assert len(digest) == 12 and int(digest, 16) >= 0
    copy = tmp_path / trained.name
    shutil.copytree(trained, copy)
    assert load_scorer(f"tox-minilm:{copy}", device="cpu").version == scorer.version
    from safetensors.torch import load_file, save_file

    head = load_file(str(copy / HEAD_FILE))
    head["out.bias"] = head["out.bias"] + 1.0
    save_file(head, str(copy / HEAD_FILE))
    assert load_scorer(f"tox-minilm:{copy}", device="cpu").version != scorer.version


def test_frozen_mode_trains_a_head_only(tiny_rtp: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_rtp, tiny_encoder, mode="frozen", epochs=3)
    result = train_scorer(config, tmp_path / "frozen", log=lambda _: None)
    assert result.epochs[-1].loss < result.epochs[0].loss
    assert not (tmp_path / "frozen" / "adapter_model.safetensors").exists()
    scorer = load_scorer(f"tox-minilm:{tmp_path / 'frozen'}", device="cpu")
    assert scorer.score(["you are a fool"])[0] is not None


def test_bad_specs_and_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DetoxError, match="unknown scorer"):
        load_scorer("tox-minilm-large")
    with pytest.raises(DetoxError, match="weights folder not found"):
        load_scorer(f"tox-minilm:{tmp_path / 'nope'}")
    with pytest.raises(DetoxError, match="weights not found") as info:
        load_scorer(f"tox-minilm:{tmp_path}")
    assert "detox score train" in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(trained: Path) -> None:
    texts = ["you are a stupid idiot", "the weather is nice today"]
    cpu = load_scorer(f"tox-minilm:{trained}", device="cpu").score(texts)
    gpu = load_scorer(f"tox-minilm:{trained}", device="cuda").score(texts)
    assert gpu == pytest.approx(cpu, abs=1e-3)


@pytest.mark.slow
def test_shipped_weights_judge_obvious_texts() -> None:
    assert (SHIPPED_WEIGHTS / HEAD_FILE).is_file()
    scorer = load_scorer("tox-minilm", device="cpu")
    assert scorer.name == "tox-minilm"
    toxic = [
        "You are a worthless, pathetic idiot and everyone hates you.",
        "Shut up, you disgusting moron.",
        "What the fuck is wrong with you, asshole?",
    ]
    neutral = [
        "The weather is lovely today, let's go for a walk in the park.",
        "I think that people who volunteer at the library are very kind.",
        "The meeting has been moved to Thursday at three o'clock.",
    ]
    scores = scorer.score(toxic + neutral)
    assert all(s is not None and s > 0.5 for s in scores[:3]), scores
    assert all(s is not None and s < 0.2 for s in scores[3:]), scores


def test_same_seed_gives_the_same_weights(
    tiny_rtp: Path, tiny_encoder: Path, trained: Path, tmp_path: Path
) -> None:
    train_scorer(tiny_config(tiny_rtp, tiny_encoder), tmp_path / "again", log=lambda _: None)
    for name in (HEAD_FILE, "adapter_model.safetensors"):
        assert (tmp_path / "again" / name).read_bytes() == (trained / name).read_bytes()


def test_train_command_on_a_tiny_slice(
    tiny_rtp: Path, tiny_encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from detox_cli.commands import score_group

    app = typer.Typer()
    app.add_typer(score_group.app, name="score")
    out = tmp_path / "cli"
    args = ["score", "train", "--out", str(out), "--rtp", str(tiny_rtp), "--encoder"]
    args += [str(tiny_encoder), "--limit", "30", "--epochs", "3", "--lr", "5e-3"]
    args += ["--head-lr", "1e-2", "--batch-size", "8", "--max-length", "32"]
    typer.main.get_command(app).main(args=args, prog_name="detox", standalone_mode=False)
    record = json.loads((out / "training.json").read_text(encoding="utf-8"))
    losses = [e["loss"] for e in record["result"]["epochs"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert record["result"]["n_dev"] == 12  # 6 of the 30 records
    assert "weights in" in capsys.readouterr().err
    assert load_scorer(f"tox-minilm:{out}", device="cpu").score(["you fool"])[0] is not None
