"""Train a tox-minilm judge: distil Perspective's RTP scores into all-MiniLM-L6-v2 + a head.

RealToxicityPrompts records are split by record (prompt and continuation stay together) into
train and dev with a seeded shuffle; the targets are the stored Perspective ``toxicity`` values
(BCE on soft labels). Optional labelled extras (Jigsaw ``toxic``, SemEval toxic spans = 1,
ParaDetox toxic = 1 / neutral = 0) join the train side only, with a loss weight. The encoder is
either fine-tuned with LoRA (peft) or frozen (the head then trains on cached pooled states).
Same seed, data and thread count give the same weights.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from torch import nn

from detox_core.errors import DetoxError
from detox_core.io import iter_jsonl
from detox_core.scoring.agreement import Agreement, agreement
from detox_core.scoring.minilm import (
    ADAPTER_FILE,
    CONFIG_FILE,
    DEFAULT_ENCODER,
    HEAD_FILE,
    SCORER_NAME,
    ToxHead,
    ToxModelConfig,
    load_encoder,
    mean_pool,
)

ExtraSource = Literal["jigsaw", "spans", "paradetox"]
LORA_TARGETS = ["query", "key", "value", "dense"]


class JudgeSettings(BaseModel):
    """Encoder, head and optimiser settings shared by every MiniLM judge trainer."""

    encoder: str = DEFAULT_ENCODER
    mode: Literal["lora", "frozen"] = "lora"
    seed: int = 0
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = 5e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    head_hidden: int = 128
    max_length: int = 128


class TrainConfig(JudgeSettings):
    """Settings of ``detox score train`` (saved in ``training.json``)."""

    rtp: Path
    extra: dict[ExtraSource, Path] = Field(default_factory=dict)
    extra_weight: float = 0.5
    extra_limit: int | None = None
    dev_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    limit: int | None = None


class Example(BaseModel):
    """A training or dev text with its (soft) target and loss weight."""

    text: str
    target: float
    weight: float = 1.0


class EpochLog(BaseModel):
    """One epoch: mean training loss and (with a dev split) the dev agreement."""

    epoch: int
    loss: float
    seconds: float
    dev: Agreement | None = None


class TrainResult(BaseModel):
    """What a training run did: sizes, per-epoch logs, the final dev agreement and wall time."""

    n_train: int
    n_dev: int
    epochs: list[EpochLog]
    dev: Agreement | None
    seconds: float


def read_rtp_records(path: Path, limit: int | None = None) -> list[list[Example]]:
    """Per RTP record, its prompt and continuation with a Perspective toxicity (others skipped)."""
    records: list[list[Example]] = []
    for _, obj in iter_jsonl(path):
        if limit is not None and len(records) >= limit:
            break
        texts = []
        for part in ("prompt", "continuation"):
            item = obj.get(part)
            if isinstance(item, dict):
                text, tox = item.get("text"), item.get("toxicity")
                if isinstance(text, str) and text.strip() and isinstance(tox, int | float):
                    texts.append(Example(text=text, target=float(tox)))
        records.append(texts)
    if not any(records):
        raise DetoxError(f"no scored texts in {path}", "pass an RTP-format JSONL (prompt_dev)")
    return records


def split_records(n: int, dev_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded shuffle of record indices; the first ``dev_fraction`` are dev: (train, dev)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_dev = round(n * dev_fraction)
    return sorted(order[n_dev:]), sorted(order[:n_dev])


def read_extra(source: ExtraSource, path: Path, weight: float) -> list[Example]:
    """Labelled texts: Jigsaw ``toxic`` 0/1, every toxic-spans text 1, ParaDetox toxic 1 / rewrite 0."""
    if not path.is_file():
        raise DetoxError(f"file not found: {path}", f"check the --{source} path")
    rows: list[Example] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if source == "paradetox":
            for row in csv.DictReader(handle, delimiter="\t"):
                rows.append(Example(text=row["toxic"], target=1.0, weight=weight))
                if row.get("neutral1"):
                    rows.append(Example(text=row["neutral1"], target=0.0, weight=weight))
        else:
            for row in csv.DictReader(handle):
                text = row["comment_text"] if source == "jigsaw" else row["text"]
                target = float(row["toxic"]) if source == "jigsaw" else 1.0
                rows.append(Example(text=text, target=target, weight=weight))
    return [r for r in rows if r.text.strip()]


def _add_lora(encoder: Any, config: JudgeSettings) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise DetoxError("peft is not installed", "run `uv sync` (detox-cmd brings peft)") from exc
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LORA_TARGETS,
        bias="none",
    )
    return get_peft_model(encoder, lora)


def _schedule(step: int, total: int, warmup: float) -> float:
    warm = max(1, int(total * warmup))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


class _Encoded:
    """Pooled encoder states of fixed texts (frozen mode), computed once."""

    def __init__(self, encoder: Any, tokenizer: Any, texts: list[str], max_length: int) -> None:
        self.states = torch.zeros(len(texts), int(encoder.config.hidden_size))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                chunk = order[start : start + 64]
                enc = tokenizer(
                    [texts[i] for i in chunk],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                )
                hidden = encoder(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).last_hidden_state
                self.states[chunk] = mean_pool(hidden, enc["attention_mask"])


class JudgeTrainer:
    """The encoder (LoRA-wrapped or frozen) and head of a judge, with batched forwards and saving."""

    def __init__(self, settings: JudgeSettings, log: Callable[[str], None] = print) -> None:
        torch.manual_seed(settings.seed)
        self.settings = settings
        self.log = log
        self.encoder, self.tokenizer = load_encoder(settings.encoder)
        hidden = int(self.encoder.config.hidden_size)
        self.head = ToxHead(hidden, settings.head_hidden)
        self.model_config = ToxModelConfig(
            encoder=settings.encoder,
            hidden_size=hidden,
            head_hidden=settings.head_hidden,
            max_length=settings.max_length,
            lora=settings.mode == "lora",
        )
        if settings.mode == "lora":
            self.encoder = _add_lora(self.encoder, settings)
        else:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def forward(self, texts: list[str]) -> torch.Tensor:
        """Logits ``[B]`` of ``texts`` through the encoder and head (with gradients)."""
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.settings.max_length,
        )
        hidden = self.encoder(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state
        logits: torch.Tensor = self.head(hidden, enc["attention_mask"])
        return logits

    def optimizer(self, total_steps: int, train_encoder: bool) -> tuple[Any, Any]:
        """AdamW over the head (and the LoRA weights) with warm-up and linear decay."""
        cfg = self.settings
        params = [{"params": list(self.head.parameters()), "lr": cfg.head_lr}]
        if train_encoder:
            lora = [p for p in self.encoder.parameters() if p.requires_grad]
            params.append({"params": lora, "lr": cfg.lr})
        optimizer = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _schedule(step, total_steps, cfg.warmup)
        )
        return optimizer, scheduler

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> list[float]:
        """Scores of ``texts`` with the current weights (eval mode, length-sorted batches)."""
        self.encoder.eval()
        self.head.eval()
        out = [0.0] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            probs = torch.sigmoid(self.forward([texts[i] for i in chunk]))
            for i, p in zip(chunk, probs.tolist(), strict=True):
                out[i] = float(p)
        return out

    def save_weights(self, out: Path, record: dict[str, Any]) -> Path:
        """Write the weights folder: config, head, adapter (LoRA mode) and ``training.json``."""
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(self.model_config.model_dump_json(indent=2) + "\n")
        head = {k: v.detach().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(out / HEAD_FILE))
        if self.settings.mode == "lora":
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(self.encoder)
            save_file({k: v.contiguous() for k, v in state.items()}, str(out / ADAPTER_FILE))
            settings = self.encoder.peft_config["default"]
            settings.base_model_name_or_path = self.settings.encoder  # not this machine's path
            settings.target_modules = sorted(settings.target_modules)  # a set: stable bytes
            settings.save_pretrained(str(out))
        (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        return out


class Trainer(JudgeTrainer):
    """A tox-minilm run: the RTP (and extra) data on top of the judge's encoder and head."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        records = read_rtp_records(config.rtp, config.limit)
        train_idx, dev_idx = split_records(len(records), config.dev_fraction, config.seed)
        self.train = [e for i in train_idx for e in records[i]]
        self.dev = [e for i in dev_idx for e in records[i]]
        for source, path in sorted(config.extra.items()):
            extra = read_extra(source, path, config.extra_weight)
            random.Random(config.seed).shuffle(extra)
            self.train += extra[: config.extra_limit]
        super().__init__(config, log)
        self.cached: _Encoded | None = None
        self.cached_dev: _Encoded | None = None
        if config.mode == "frozen":
            self.cached = _Encoded(
                self.encoder, self.tokenizer, [e.text for e in self.train], config.max_length
            )
            self.cached_dev = _Encoded(
                self.encoder, self.tokenizer, [e.text for e in self.dev], config.max_length
            )

    def _logits(self, indices: list[int]) -> torch.Tensor:
        if self.cached is not None:
            pooled = self.cached.states[indices].unsqueeze(1)
            cached_logits: torch.Tensor = self.head(pooled, torch.ones(len(indices), 1))
            return cached_logits
        return self.forward([self.train[i].text for i in indices])

    def evaluate(self) -> Agreement | None:
        """Agreement with Perspective on the dev split (None without one)."""
        if not self.dev:
            return None
        if self.cached_dev is not None:
            self.head.eval()
            with torch.inference_mode():
                pooled = self.cached_dev.states.unsqueeze(1)
                logits = self.head(pooled, torch.ones(len(self.dev), 1))
            scores = [float(p) for p in torch.sigmoid(logits).tolist()]
        else:
            scores = self.predict([e.text for e in self.dev])
        return agreement(scores, [e.target for e in self.dev], scorer=SCORER_NAME)

    def fit(self) -> TrainResult:
        """Train for the configured epochs, evaluating on dev after each."""
        cfg = self.config
        steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        optimizer, scheduler = self.optimizer(total, train_encoder=self.cached is None)
        targets = torch.tensor([e.target for e in self.train])
        weights = torch.tensor([e.weight for e in self.train])
        generator = torch.Generator().manual_seed(cfg.seed)
        started = time.perf_counter()
        logs: list[EpochLog] = []
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            self.head.train()
            if self.cached is None:
                self.encoder.train()
            order = torch.randperm(len(self.train), generator=generator).tolist()
            total_loss = 0.0
            for step in range(steps_per_epoch):
                batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                logits = self._logits(batch)
                loss_each = nn.functional.binary_cross_entropy_with_logits(
                    logits, targets[batch], reduction="none"
                )
                loss = (loss_each * weights[batch]).sum() / weights[batch].sum()
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                total_loss += loss.item()
                if step % 50 == 0:
                    self.log(f"epoch {epoch} step {step}/{steps_per_epoch} loss {loss.item():.4f}")
            dev = self.evaluate()
            logs.append(
                EpochLog(
                    epoch=epoch,
                    loss=total_loss / steps_per_epoch,
                    seconds=time.perf_counter() - epoch_start,
                    dev=dev,
                )
            )
            self.log(logs[-1].model_dump_json(exclude={"dev": {"confusion"}}))
        return TrainResult(
            n_train=len(self.train),
            n_dev=len(self.dev),
            epochs=logs,
            dev=logs[-1].dev,
            seconds=time.perf_counter() - started,
        )

    def save(self, out: Path, result: TrainResult, command: str = "") -> Path:
        """Write the weights folder with the command, config and result in ``training.json``."""
        record = {
            "command": command,
            "config": json.loads(self.config.model_dump_json()),
            "result": json.loads(result.model_dump_json()),
        }
        return self.save_weights(out, record)


def train_scorer(
    config: TrainConfig, out: Path, command: str = "", log: Callable[[str], None] = print
) -> TrainResult:
    """Train with ``config`` and save the weights folder to ``out`` (usable as tox-minilm:OUT)."""
    trainer = Trainer(config, log=log)
    log(f"train {len(trainer.train)} texts, dev {len(trainer.dev)} texts, mode {config.mode}")
    result = trainer.fit()
    trainer.save(out, result, command)
    return result
