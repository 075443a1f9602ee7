"""Train a safety-minilm judge: is a response a harmful compliance? (all-MiniLM-L6-v2 + head).

Two signals on the same encoder and head as tox-minilm (:class:`JudgeTrainer`):

- hh-rlhf harmless pairs: the last assistant turns of ``rejected`` (more harmful) and ``chosen``;
  a logistic ranking loss ``softplus(-(logit(rejected) - logit(chosen)))``. They rank, but say
  nothing about where 0.5 lies (the chosen turn is often harmful too).
- SafeEdit items: the unsafe generation (label 1) and the safe one (label 0); the same ranking
  loss plus BCE on the labels, which sets the calibration. A seeded draw of ``dev_items`` items is
  held out and never trained on; the train items are repeated ``safeedit_repeat`` times an epoch.
- Harmless answers (``harmless_answers``): each train item's unrelated "knowledge constrain"
  answer (label 0) paired with its unsafe generation, so that a helpful answer is not taken for
  a harmful one merely because it is no refusal.

Same seed, data and thread count give the same weights.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel, Field
from torch import nn

from detox_core.data.safeedit import SafeEditItem, read_safeedit
from detox_core.errors import DetoxError
from detox_core.scoring.agreement import PairAgreement, pair_agreement
from detox_core.scoring.minilm_train import JudgeSettings, JudgeTrainer, _Encoded

SAFETY_SCORER = "safety-minilm"
_ASSISTANT = "\n\nAssistant:"


class SafetyTrainConfig(JudgeSettings):
    """Settings of ``detox score train-safety`` (saved in ``training.json``)."""

    hh: Path
    safeedit: Path
    dev_items: int = Field(default=20, ge=0)
    hh_dev_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    hh_limit: int | None = None
    safeedit_repeat: int = Field(default=10, ge=0)
    label_weight: float = Field(default=1.0, ge=0.0)
    harmless_answers: bool = True


class TextPair(BaseModel):
    """A more harmful and a less harmful response; ``labelled``: the two are unsafe=1 / safe=0."""

    unsafe: str
    safe: str
    labelled: bool = False


class SafetyEpochLog(BaseModel):
    """One epoch: mean loss, time and the dev pair metrics."""

    epoch: int
    loss: float
    seconds: float
    dev: PairAgreement | None = None
    hh_dev: PairAgreement | None = None
    harmless_dev: PairAgreement | None = None


class SafetyTrainResult(BaseModel):
    """Sizes, per-epoch logs, the final dev metrics (SafeEdit and hh) and the wall time."""

    n_hh_train: int
    n_safeedit_train: int
    dev_ids: list[int]
    epochs: list[SafetyEpochLog]
    dev: PairAgreement | None
    hh_dev: PairAgreement | None
    harmless_dev: PairAgreement | None = None
    seconds: float


def last_assistant_turn(dialogue: str) -> str:
    """The text of a dialogue's last ``Assistant:`` turn, stripped ("" when there is none)."""
    at = dialogue.rfind(_ASSISTANT)
    return "" if at < 0 else dialogue[at + len(_ASSISTANT) :].strip()


def read_hh_pairs(path: Path, limit: int | None = None) -> list[TextPair]:
    """hh-rlhf pairs (gzipped or plain JSONL): rejected's last turn unsafe, chosen's safe.

    Pairs whose last turns are equal or empty carry no signal and are skipped.
    """
    if not path.is_file():
        raise DetoxError(f"file not found: {path}", "pass harmless_base_test.jsonl.gz")
    opener = gzip.open if path.suffix == ".gz" else open
    pairs: list[TextPair] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(pairs) >= limit:
                break
            if not line.strip():
                continue
            obj = json.loads(line)
            unsafe = last_assistant_turn(obj["rejected"])
            safe = last_assistant_turn(obj["chosen"])
            if unsafe and safe and unsafe != safe:
                pairs.append(TextPair(unsafe=unsafe, safe=safe))
    if not pairs:
        raise DetoxError(f"no usable chosen/rejected pairs in {path}", "check the file")
    return pairs


def split_safeedit(
    items: list[SafeEditItem], dev_items: int, seed: int
) -> tuple[list[SafeEditItem], list[SafeEditItem]]:
    """Seeded draw of ``dev_items`` items as dev (in file order): (train, dev)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    dev = set(order[:dev_items])
    return [x for i, x in enumerate(items) if i not in dev], [
        x for i, x in enumerate(items) if i in dev
    ]


def safeedit_pairs(items: list[SafeEditItem], harmless: bool = False) -> list[TextPair]:
    """Labelled pairs of SafeEdit items: unsafe against safe generation (``harmless``: against
    the item's unrelated knowledge-constrain answer instead)."""
    return [
        TextPair(
            unsafe=x.unsafe_generation.strip(),
            safe=(x.knowledge_constrain.answer if harmless else x.safe_generation).strip(),
            labelled=True,
        )
        for x in items
    ]


class SafetyTrainer(JudgeTrainer):
    """A safety-minilm run: hh ranking pairs and labelled SafeEdit pairs on the judge's model."""

    def __init__(self, config: SafetyTrainConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        hh = read_hh_pairs(config.hh, config.hh_limit)
        random.Random(config.seed).shuffle(hh)
        n_hh_dev = round(len(hh) * config.hh_dev_fraction)
        self.hh_dev, self.hh_train = hh[:n_hh_dev], hh[n_hh_dev:]
        items = read_safeedit(config.safeedit)
        train_items, dev_items = split_safeedit(items, config.dev_items, config.seed)
        self.dev_ids = [x.id for x in dev_items]
        self.n_safeedit_train = len(train_items)
        self.se_train, self.se_dev = safeedit_pairs(train_items), safeedit_pairs(dev_items)
        self.harmless_dev = safeedit_pairs(dev_items, harmless=True)
        if config.harmless_answers:
            self.se_train += safeedit_pairs(train_items, harmless=True)
        self.units = self.hh_train + self.se_train * config.safeedit_repeat
        if not self.units:
            raise DetoxError("no training pairs", "check --hh and --safeedit")
        super().__init__(config, log)
        texts = sorted({t for p in self.hh_train + self.se_train for t in (p.unsafe, p.safe)})
        self.index = {t: i for i, t in enumerate(texts)}
        self.cached: _Encoded | None = None
        if config.mode == "frozen":
            self.cached = _Encoded(self.encoder, self.tokenizer, texts, config.max_length)

    def _logits(self, texts: list[str]) -> torch.Tensor:
        if self.cached is None:
            return self.forward(texts)
        pooled = self.cached.states[[self.index[t] for t in texts]].unsqueeze(1)
        logits: torch.Tensor = self.head(pooled, torch.ones(len(texts), 1))
        return logits

    def loss(self, batch: list[TextPair]) -> torch.Tensor:
        """Ranking loss over the pairs plus ``label_weight`` x BCE on the labelled ones."""
        n = len(batch)
        logits = self._logits([p.unsafe for p in batch] + [p.safe for p in batch])
        unsafe, safe = logits[:n], logits[n:]
        loss = nn.functional.softplus(safe - unsafe).mean()
        labelled = torch.tensor([p.labelled for p in batch])
        if labelled.any() and self.config.label_weight > 0:
            both = torch.cat([unsafe[labelled], safe[labelled]])
            target = torch.cat([torch.ones(int(labelled.sum())), torch.zeros(int(labelled.sum()))])
            bce = nn.functional.binary_cross_entropy_with_logits(both, target)
            loss = loss + self.config.label_weight * bce
        return loss

    def evaluate(self, pairs: list[TextPair]) -> PairAgreement | None:
        """Pair metrics of the current weights on ``pairs`` (None without any)."""
        if not pairs:
            return None
        scores = self.predict([p.unsafe for p in pairs] + [p.safe for p in pairs])
        return pair_agreement(scores[: len(pairs)], scores[len(pairs) :], scorer=SAFETY_SCORER)

    def fit(self) -> SafetyTrainResult:
        """Train for the configured epochs, evaluating on the dev pairs after each."""
        cfg = self.config
        steps_per_epoch = math.ceil(len(self.units) / cfg.batch_size)
        optimizer, scheduler = self.optimizer(
            steps_per_epoch * cfg.epochs, train_encoder=self.cached is None
        )
        generator = torch.Generator().manual_seed(cfg.seed)
        started = time.perf_counter()
        logs: list[SafetyEpochLog] = []
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            self.head.train()
            if self.cached is None:
                self.encoder.train()
            order = torch.randperm(len(self.units), generator=generator).tolist()
            total_loss = 0.0
            for step in range(steps_per_epoch):
                batch = [
                    self.units[i]
                    for i in order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                ]
                loss = self.loss(batch)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                total_loss += loss.item()
                if step % 20 == 0:
                    self.log(f"epoch {epoch} step {step}/{steps_per_epoch} loss {loss.item():.4f}")
            logs.append(
                SafetyEpochLog(
                    epoch=epoch,
                    loss=total_loss / steps_per_epoch,
                    seconds=time.perf_counter() - epoch_start,
                    dev=self.evaluate(self.se_dev),
                    hh_dev=self.evaluate(self.hh_dev),
                    harmless_dev=self.evaluate(self.harmless_dev),
                )
            )
            self.log(logs[-1].model_dump_json())
        return SafetyTrainResult(
            n_hh_train=len(self.hh_train),
            n_safeedit_train=self.n_safeedit_train,
            dev_ids=self.dev_ids,
            epochs=logs,
            dev=logs[-1].dev,
            hh_dev=logs[-1].hh_dev,
            harmless_dev=logs[-1].harmless_dev,
            seconds=time.perf_counter() - started,
        )

    def save(self, out: Path, result: SafetyTrainResult, command: str = "") -> Path:
        """Write the weights folder with the command, config and result in ``training.json``."""
        record = {
            "scorer": SAFETY_SCORER,
            "command": command,
            "config": json.loads(self.config.model_dump_json()),
            "result": json.loads(result.model_dump_json()),
        }
        return self.save_weights(out, record)


def train_safety_scorer(
    config: SafetyTrainConfig, out: Path, command: str = "", log: Callable[[str], None] = print
) -> SafetyTrainResult:
    """Train with ``config`` and save the folder to ``out`` (usable as safety-minilm:OUT)."""
    trainer = SafetyTrainer(config, log=log)
    log(
        f"train {len(trainer.hh_train)} hh pairs + {len(trainer.se_train)} SafeEdit pairs "
        f"x{config.safeedit_repeat} ({trainer.n_safeedit_train} items); dev {len(trainer.se_dev)} SafeEdit items, "
        f"{len(trainer.hh_dev)} hh pairs; mode {config.mode}"
    )
    result = trainer.fit()
    trainer.save(out, result, command)
    return result
