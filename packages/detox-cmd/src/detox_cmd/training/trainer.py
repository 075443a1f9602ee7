"""The CMD trainer: LoRA fine-tuning on chains with the LM and contrastive losses (METHODS §2.7).

One optimizer step = ``gradient_accumulation_steps`` micro-batches (fewer at the end of an
epoch). Per micro-batch:

- LM loss: cross-entropy on the chain tokens only (labels are -100 on ``# Text: {prompt} `` and
  on padding).
- Contrastive loss, for the rows that have at least one negative: InfoNCE between the model's
  own on-policy anchor, the positive and the negatives (``detox_cmd.training.anchors``; the
  anchors of all the micro-batches of an optimizer step are sampled in one KV-cached batch). Like
  the reference, the anchor's encoding carries gradient (no gradient flows through the sampling
  itself); ``cl_anchor_grad=False`` detaches it.
- ``loss = lm + cl_weight * cl``.

Device placement, DDP and bf16 autocast come from ``accelerate`` (the same code runs on one CPU
and under ``accelerate launch`` on several GPUs). Checkpoints hold everything needed to continue
bit-for-bit: adapter, optimizer, scheduler, every process's RNG states, the epoch and the number
of batches consumed in it (the data order is a function of the seed and the epoch).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from detox_cmd.training import checkpoint as ckpt
from detox_cmd.training.anchors import contrastive_term, step_anchors
from detox_cmd.training.config import CMDTrainConfig
from detox_cmd.training.data import ChainCollator, ChainDataset, EpochSampler, load_chain_records
from detox_cmd.training.lora import apply_lora, lora_target_modules
from detox_cmd.training.plot import plot_losses
from detox_cmd.training.records import LossRecord, TrainerState, TrainResult, TrainRunInfo
from detox_cmd.training.run_files import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    LOSSES_FILE,
    PLOT_FILE,
    check_output_dir,
    check_resume_settings,
    normalize_config,
    read_losses,
    truncate_losses,
)
from detox_cmd.training.schedule import warmup_cosine
from detox_core.errors import DetoxError
from detox_core.io import JsonlWriter, atomic_write_text
from detox_core.locking import output_lock
from detox_core.models import ModelOptions, load_model
from detox_core.parallel import current_group
from detox_core.progress import progress_bar


def resolve_mixed_precision(setting: str) -> str:
    """``auto`` is bf16 on CUDA devices that support it, no mixed precision otherwise."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def enable_checkpointing(model: Any) -> None:
    """Non-reentrant activation (gradient) checkpointing, under either transformers name."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _group_sizes(start: int, end: int, accumulation: int) -> Iterator[int]:
    """Micro-batch counts of the optimizer steps between batch ``start`` and ``end``."""
    position = start
    while position < end:
        size = min(accumulation, end - position)
        yield size
        position += size


class CMDTrainer:
    """Builds the model, data and optimizer for one run directory and trains it."""

    def __init__(self, config: CMDTrainConfig, show_progress: bool = True) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config = normalize_config(config)
        self.show_progress = show_progress
        self.out = self.config.output_dir
        self.checkpoints = self.out / CHECKPOINTS_DIR
        check_output_dir(self.out, self.config.resume)
        records = load_chain_records(self.config.data_path)  # fail before loading the model
        self.accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(self.config.mixed_precision)
        )
        set_seed(self.config.seed)

        lm = load_model(self.config.model, ModelOptions(device="cpu", dtype="float32"))
        self.tokenizer = lm.tokenizer
        targets = lora_target_modules(lm.model, self.config.lora_target_modules)
        if self.config.gradient_checkpointing:
            enable_checkpointing(lm.model)
        model = apply_lora(lm.model, self.config, targets)
        self.run_info = TrainRunInfo(
            base_model=self.config.model,
            base_model_source=lm.source,
            model_type=str(getattr(lm.model.config, "model_type", "")),
            lora_target_modules=targets,
            num_processes=self.accelerator.num_processes,
            config=self.config,
        )
        check_resume_settings(self.out, self.config, self.accelerator.num_processes)
        self.accelerator.wait_for_everyone()  # every process checked --out before any writes

        self.dataset = ChainDataset(
            self.tokenizer, records, self.config.max_length, self.config.append_eos
        )
        if len(self.dataset) == 0:
            raise DetoxError(
                f"no chain fits in --max-length {self.config.max_length}",
                "raise --max-length",
            )
        pad = self.tokenizer.pad_token_id
        pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id)
        self.sampler = EpochSampler(len(self.dataset), self.config.seed)
        loader = DataLoader(
            self.dataset,
            batch_size=self.config.per_device_train_batch_size,
            sampler=self.sampler,
            collate_fn=ChainCollator(pad_id),
            drop_last=False,
            # Its own generator: starting an iterator (also a resumed one) must not draw from
            # the global RNG that dropout uses.
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.batches_per_epoch = len(self.loader)
        self.steps_per_epoch = math.ceil(
            self.batches_per_epoch / self.config.gradient_accumulation_steps
        )
        self.total_steps = self.config.max_steps or (
            self.config.num_train_epochs * self.steps_per_epoch
        )
        warmup = math.ceil(self.config.warmup_ratio * self.total_steps)
        processes = self.accelerator.num_processes
        scheduler = warmup_cosine(self.optimizer, warmup, self.total_steps, processes)
        self.scheduler = self.accelerator.prepare(scheduler)
        self.step_seconds = 0.0  # time spent in optimizer steps by this process's train()
        self.step_tokens = 0
        self.state = TrainerState(
            step=0,
            epoch=0,
            batch_in_epoch=0,
            total_steps=self.total_steps,
            tokens=0,
            num_processes=processes,
        )

    # ----------------------------------------------------------------------------- setup

    @property
    def unwrapped(self) -> Any:
        """The peft model without DDP wrapping."""
        return self.accelerator.unwrap_model(self.model)

    # ----------------------------------------------------------------------------- steps

    def _anchor_seed(self, step: int) -> int:
        rank, processes = int(self.accelerator.process_index), int(self.accelerator.num_processes)
        return self.config.seed * 1_000_003 + step * processes + rank

    def _step_anchors(self, batches: list[dict[str, Any]], step: int) -> list[list[str]]:
        """The anchors of an optimizer step's micro-batches, sampled together (``anchors``)."""
        self.model.eval()
        anchors = step_anchors(
            self.unwrapped, self.tokenizer, batches, self.config, self._anchor_seed(step)
        )
        self.model.train()
        return anchors

    def _micro_step(
        self, batch: dict[str, Any], scale: float, anchors: list[str], sync: bool
    ) -> tuple[float, float | None, int, int]:
        """Forward and backward of one micro-batch: ``(lm, cl, tokens, cl_groups)``."""
        context = nullcontext() if sync else self.accelerator.no_sync(self.model)
        with context:
            out = self.model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                labels=batch["labels"],
                use_cache=False,
            )
            lm: torch.Tensor = out.loss
            cl, groups = (None, 0)
            if self.config.contrastive:
                # Through the unwrapped module: under DDP every wrapped forward is a collective
                # (buffer broadcast), and only the ranks with negatives in their batch get here.
                # The gradients still reach the shared parameters before the one backward's
                # all-reduce.
                cl, groups = contrastive_term(
                    self.unwrapped,
                    self.tokenizer,
                    batch,
                    anchors,
                    self.config,
                    self.accelerator.device,
                    self.accelerator.autocast,
                )
            total = lm if cl is None else lm + self.config.cl_weight * cl
            self.accelerator.backward(total * scale)
        tokens = int(batch["attention_mask"].sum())
        return float(lm.detach()), (None if cl is None else float(cl.detach())), tokens, groups

    def _optimizer_step(self, batches: list[dict[str, Any]]) -> LossRecord:
        step = self.state.step
        lm_sum = cl_sum = 0.0
        cl_count = tokens = groups = 0
        anchors = (
            self._step_anchors(batches, step) if self.config.contrastive else [[] for _ in batches]
        )
        for micro, batch in enumerate(batches):
            lm, cl, n_tokens, n_groups = self._micro_step(
                batch, 1.0 / len(batches), anchors[micro], sync=micro == len(batches) - 1
            )
            lm_sum += lm
            tokens += n_tokens
            groups += n_groups
            if cl is not None:
                cl_sum += cl
                cl_count += 1
        if self.config.max_grad_norm is not None:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

        totals = torch.tensor(
            [lm_sum, len(batches), cl_sum, cl_count, tokens, groups],
            dtype=torch.float64,
            device=self.accelerator.device,
        )
        totals = self.accelerator.reduce(totals, reduction="sum")
        lm_mean = float(totals[0] / totals[1])
        cl_mean = float(totals[2] / totals[3]) if totals[3] > 0 else None
        total = lm_mean if cl_mean is None else lm_mean + self.config.cl_weight * cl_mean
        return LossRecord(
            step=step + 1,
            epoch=0.0,
            lm=lm_mean,
            cl=cl_mean,
            total=total,
            lr=lr,
            tokens=int(totals[4]),
            cl_groups=int(totals[5]),
        )

    # ----------------------------------------------------------------------------- files

    def _save_checkpoint(self) -> None:
        acc = self.accelerator
        final = self.checkpoints / ckpt.checkpoint_name(self.state.step)
        tmp = ckpt.temp_dir_for(final)
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        ckpt.write_rng_file(tmp, acc.process_index)
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.write_main_files(
                tmp,
                self.unwrapped,
                self.optimizer,
                self.scheduler,
                self.state,
                self.run_info.model_dump_json(indent=2),
            )
            ckpt.replace_dir(tmp, final)
            ckpt.prune(self.checkpoints, self.config.keep_checkpoints)
        acc.wait_for_everyone()

    def _resume(self) -> None:
        last = ckpt.latest_checkpoint(self.checkpoints)
        if last is None:
            return
        state = ckpt.load_into(
            last,
            self.unwrapped,
            self.optimizer,
            self.scheduler,
            self.accelerator.process_index,
        )
        self.state = state.model_copy(update={"total_steps": self.total_steps})
        if self.accelerator.is_main_process:
            truncate_losses(self.out, state.step)
        self.accelerator.wait_for_everyone()

    def _finish(self) -> Path:
        adapter = self.out / ADAPTER_DIR
        if self.accelerator.is_main_process:
            tmp = ckpt.temp_dir_for(adapter)
            shutil.rmtree(tmp, ignore_errors=True)
            self.unwrapped.save_pretrained(str(tmp))
            atomic_write_text(tmp / CONFIG_FILE, self.run_info.model_dump_json(indent=2))
            ckpt.replace_dir(tmp, adapter)
            records = read_losses(self.out)
            if records:
                plot_losses(records, self.out / PLOT_FILE)
        self.accelerator.wait_for_everyone()
        return adapter

    # ----------------------------------------------------------------------------- loop

    def train(self, stop_at_step: int | None = None) -> TrainResult:
        """Train to ``total_steps`` (or stop, after checkpointing, at ``stop_at_step``).

        Checkpoints are written every ``save_steps`` steps, at the end of every epoch, at the
        end of training and when stopping early.
        """
        acc, config = self.accelerator, self.config
        if config.resume:
            self._resume()
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / CONFIG_FILE, self.run_info.model_dump_json(indent=2))
        writer = JsonlWriter(self.out / LOSSES_FILE) if acc.is_main_process else None
        last: LossRecord | None = None
        self.model.train()
        try:
            with progress_bar() as progress:
                task = progress.add_task(
                    "training",
                    total=self.total_steps,
                    completed=self.state.step,
                    visible=self.show_progress and acc.is_main_process,
                )
                while self.state.step < self.total_steps:
                    stopped, last = self._run_epoch(writer, progress, task, stop_at_step, last)
                    if stopped:
                        return self._result(completed=False, last=last)
        finally:
            if writer is not None:
                writer.close()
        adapter = self._finish()
        return self._result(completed=True, last=last, adapter=adapter)

    def _run_epoch(
        self,
        writer: JsonlWriter | None,
        progress: Any,
        task: Any,
        stop_at_step: int | None,
        last: LossRecord | None,
    ) -> tuple[bool, LossRecord | None]:
        """Train from the saved position to the end of the epoch (or to the last step)."""
        epoch, start = self.state.epoch, self.state.batch_in_epoch
        self.sampler.set_epoch(epoch)
        self.loader.set_epoch(epoch)
        loader = self.accelerator.skip_first_batches(self.loader, start) if start else self.loader
        if start:
            loader.set_epoch(epoch)
        batches = iter(loader)
        position = start
        accumulation = self.config.gradient_accumulation_steps
        for size in _group_sizes(start, self.batches_per_epoch, accumulation):
            if self.state.step >= self.total_steps:
                break
            group = [next(batches) for _ in range(size)]
            started = time.perf_counter()
            record = self._optimizer_step(group)
            self.step_seconds += time.perf_counter() - started
            self.step_tokens += record.tokens
            position += size
            record = record.model_copy(update={"epoch": epoch + position / self.batches_per_epoch})
            epoch_done = position >= self.batches_per_epoch
            self.state = self.state.model_copy(
                update={
                    "step": record.step,
                    "epoch": epoch + 1 if epoch_done else epoch,
                    "batch_in_epoch": 0 if epoch_done else position,
                    "tokens": self.state.tokens + record.tokens,
                }
            )
            if writer is not None:
                writer.write(record)
            last = record
            progress.update(task, completed=record.step)
            save_every = self.config.save_steps
            stop = stop_at_step is not None and record.step >= stop_at_step
            if (
                epoch_done
                or stop
                or record.step == self.total_steps
                or (save_every is not None and record.step % save_every == 0)
            ):
                self._save_checkpoint()
            if stop and record.step < self.total_steps:
                return True, last
        return False, last

    def _result(
        self, completed: bool, last: LossRecord | None, adapter: Path | None = None
    ) -> TrainResult:
        return TrainResult(
            output_dir=self.out,
            steps=self.state.step,
            total_steps=self.total_steps,
            completed=completed,
            tokens=self.state.tokens,
            run_tokens=self.step_tokens,
            run_seconds=self.step_seconds,
            adapter_dir=adapter,
            last=last,
        )


def train(
    config: CMDTrainConfig, *, stop_at_step: int | None = None, show_progress: bool = True
) -> TrainResult:
    """Train a CMD LoRA adapter into ``config.output_dir`` (see ``CMDTrainer``). The main process
    holds the output folder's lock: the processes of one launch share it, a second launch is
    refused."""
    with ExitStack() as locks:
        if current_group().rank == 0:
            locks.enter_context(output_lock(config.output_dir))
        return CMDTrainer(config, show_progress=show_progress).train(stop_at_step=stop_at_step)
