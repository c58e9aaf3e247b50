"""The training loop: one code path for CPU, one GPU, or several (`accelerate launch`, DDP or FSDP).

Per optimiser step: forward, loss on the target tokens (or, for `ClassExample` rows and a model with a
sequence-classification head, the head's cross-entropy per row), backward; then the adapters' work around
the optimiser step in the order of govtune.training.step (hybrid lam, gradient norm, clipping, the Riemannian
step of unitary_full), AdamW, scheduler, the learned mixer's phi step when one is due. Per epoch:
validation loss, mean gradient norm, an atomic checkpoint. A non-finite loss or gradient stops the run,
keeping the last good checkpoint."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator, DistributedType
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_scheduler

from govtune.adapters import learned_layers, trainable_parameters
from govtune.text.class_encoding import (ClassCollator, ClassExample, HeadForward, encode_class_examples, head_pad_id,
                                         is_classifier)
from govtune.text.encoding import IGNORE_INDEX, PairCollator, encode_training_pairs, pad_token_id
from govtune.text.target_loss import TargetLoss
from govtune.training.callbacks import Callback, EpochInfo, History, StepInfo
from govtune.training.checkpoint import latest_checkpoint, save_checkpoint
from govtune.training.config import SCHEDULES, TrainConfig, TrainResult, make_accelerator
from govtune.training.data import LengthGroupedBatches, process_rows, target_count
from govtune.training.footprint import FootprintMeter
from govtune.training.mixer import ValidationMixer
from govtune.training.optim import param_groups
from govtune.training.step import StepProtocol
# resume_checkpoint and diverged under the loop's own names for them
from govtune.training.resume import diverged as _diverged
from govtune.training.resume import resume_checkpoint as _resume


class ClassLoss:
    """Cross-entropy of a sequence-classification head's logits against each row's class (`labels`: one
    class index per row; IGNORE_INDEX marks a row that counts for nothing). TargetLoss's interface, counting
    rows: the loop's loss is then the mean over the rows of the step."""

    def __init__(self, model: nn.Module):
        if not is_classifier(model):
            raise ValueError(f"the training rows are ClassExample (premise, hypothesis, class) rows, but the model "
                             f"({type(model).__name__}) has no sequence-classification head: build it with "
                             f"govtune.heads.with_classifier_head(model, tokenizer, labels), or train on "
                             f"(prompt, target) pairs")
        self.forward = HeadForward(model)

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        loss, n = self.summed(model, batch)
        return loss / n.clamp(min=1), n

    def summed(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of the rows' cross-entropy, number of rows with a class)."""
        labels = batch["labels"]
        logits = self.forward(model, batch)  # (B, classes)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
        return loss, (labels != IGNORE_INDEX).sum()


def _class_rows(train_rows: Sequence, val_rows: Sequence) -> bool:
    """Whether the rows are ClassExample rows (a head's) rather than (prompt, target) pairs; never a mix."""
    kinds = {isinstance(r, ClassExample) for r in (*train_rows, *val_rows)}
    if len(kinds) > 1:
        raise ValueError("the training and validation rows mix ClassExample rows and (prompt, target) pairs: "
                         "a head trains on ClassExample rows alone, the language model on pairs alone")
    return kinds == {True}


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], accelerator: Accelerator,
                  loss_fn: TargetLoss | ClassLoss | None = None) -> float | None:
    """Mean loss per target token (per row, with ClassLoss) over every batch of every process (`loader`:
    this process's batches; the sums and counts are added across processes)."""
    was_training = model.training
    model.eval()
    loss_fn = loss_fn or TargetLoss(accelerator.unwrap_model(model))
    total = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
    for batch in loader:
        loss, n = loss_fn.summed(model, batch)
        total += torch.stack([loss.double(), n.double()])
    total = accelerator.reduce(total, reduction="sum")
    model.train(was_training)
    return float(total[0] / total[1]) if total[1] > 0 else None


def train(model: nn.Module, tokenizer: PreTrainedTokenizerBase, train_pairs: Sequence[tuple[str, str]],
          val_pairs: Sequence[tuple[str, str]] = (), config: TrainConfig | None = None,
          out_dir: str | Path | None = None, callbacks: Sequence[Callback] = (),
          accelerator: Accelerator | None = None) -> TrainResult:
    """Fine-tune `model` (adapters already injected) on (prompt, target) pairs, or, for a model with a
    sequence-classification head (`govtune.heads`), on `ClassExample` rows (`govtune.text.class_encoding`).
    Returns the history and the footprint; the model is trained in place (unwrap it with
    `accelerator.unwrap_model` under DDP/FSDP)."""
    config = config or TrainConfig()
    if not train_pairs:
        raise ValueError("no training pairs: the few-shot sample is empty (shots = 0 means no training)")
    run = _Run(model, tokenizer, train_pairs, val_pairs, config, out_dir, callbacks, accelerator)
    run.start()
    for epoch in range(run.first_epoch, config.epochs + 1):
        run.train_epoch(epoch)
    return run.finish()


class _Run:
    """One call of `train`: set up once (data, optimiser, schedule, resume), then epochs of optimiser steps,
    each epoch ending with validation and a checkpoint."""

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, train_pairs, val_pairs,
                 config: TrainConfig, out_dir: str | Path | None, callbacks: Sequence[Callback],
                 accelerator: Accelerator | None):
        self.config = config
        self.acc = acc = accelerator or make_accelerator(config.mixed_precision, config.grad_accum)
        torch.manual_seed(config.seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.classes = _class_rows(train_pairs, val_pairs)
        if self.classes:
            ClassLoss(model)  # a model without a head fails here, before any encoding
        self._setup_data(tokenizer, train_pairs, val_pairs, model)
        self._setup_optimizer(model)
        # The batches are not handed to accelerate (`_process_batch` shards them), nor is the scheduler:
        # accelerate would step it once per process per step, for per-process batches that add up to more.
        self.model, self.optimizer = acc.prepare(model, self.optimizer)
        self.unwrapped = acc.unwrap_model(self.model)
        self.loss_fn = ClassLoss(self.unwrapped) if self.classes else TargetLoss(self.unwrapped)
        self.mixer = self.protocol.mixer = _learned_mixer(self.unwrapped, self.val_enc, self.collate, config, acc,
                                                          self.loss_fn)
        self.history = History()
        self.watchers = [self.history, *callbacks]
        # What a checkpoint must agree on to be continued: the same sequence of batches and schedule.
        self.run_key = {"seed": config.seed, "epochs": config.epochs, "total_steps": self.total_steps,
                        "train_examples": len(self.train_enc), "batch_size": config.batch_size,
                        "grad_accum": config.grad_accum,
                        "param_groups": [g["name"] for g in self.optimizer.param_groups]}
        self.step, self.checkpoint, self.first_epoch = 0, None, 1

    def _setup_data(self, tokenizer, train_pairs, val_pairs, model: nn.Module) -> None:
        """Global batches of `batch_size` rows, the same whatever the number of processes; each process
        runs its share of every batch (`_process_batch`). A head's rows are encoded as `classify_pairs`
        scores them, padded on the right; each is one target."""
        config = self.config
        if self.classes:
            self.collate = ClassCollator(head_pad_id(model, tokenizer))
            self.train_enc = encode_class_examples(tokenizer, list(train_pairs), config.max_length)
            self.val_enc = encode_class_examples(tokenizer, list(val_pairs), config.max_length)
            self.targets = [1] * len(self.train_enc)
        else:
            self.collate = PairCollator(pad_token_id(tokenizer))
            self.train_enc = encode_training_pairs(tokenizer, list(train_pairs), config.max_length)
            self.val_enc = encode_training_pairs(tokenizer, list(val_pairs), config.max_length)
            self.targets = [target_count(e.labels, IGNORE_INDEX) for e in self.train_enc]
        self.batches = LengthGroupedBatches([len(e.input_ids) for e in self.train_enc], config.batch_size,
                                            seed=config.seed)
        self.val_enc.sort(key=lambda e: len(e.input_ids))  # similar lengths per batch; the mean is order-free
        rows = list(range(len(self.val_enc)))
        self.val_batches = [rows[i:i + config.batch_size] for i in range(0, len(rows), config.batch_size)]

    def _process_batch(self, encoded: list, rows: list[int]) -> dict[str, torch.Tensor]:
        """This process's share of the global batch `rows`, collated and on the device. A process left
        without rows (fewer rows than processes) runs one row with no target tokens (a head's: no class)
        instead: it adds nothing to the loss or the gradient, and every process joins the step's
        collectives."""
        mine = process_rows(rows, self.acc.process_index, self.acc.num_processes)
        batch = self.collate([encoded[i] for i in mine or rows[:1]])
        if not mine:
            batch["labels"].fill_(IGNORE_INDEX)
        return {k: v.to(self.acc.device) for k, v in batch.items()}

    def _val_loss(self) -> float | None:
        if not self.val_enc:
            return None
        batches = (self._process_batch(self.val_enc, rows) for rows in self.val_batches)
        return evaluate_loss(self.model, batches, self.acc, self.loss_fn)

    def _setup_optimizer(self, model: nn.Module) -> None:
        config = self.config
        self.protocol = StepProtocol(model, self.acc.clip_grad_norm_, config.max_grad_norm)
        if not self.protocol.params and not self.protocol.riem_params:
            raise ValueError("the model has no trainable parameters: inject an adapter first "
                             "(govtune.inject(model, AdapterConfig(method=...))) or use method 'full'")
        groups = param_groups(model, config.lr, config.weight_decay, config.lr_branches)
        placeholder = [{"name": "none", "params": [torch.zeros(1, requires_grad=True)]}]  # Riemannian only
        self.optimizer = torch.optim.AdamW(groups or placeholder, lr=config.lr)
        self.total_steps = math.ceil(len(self.batches) / config.grad_accum) * config.epochs
        self.scheduler = get_scheduler(SCHEDULES[config.schedule], self.optimizer,
                                       num_warmup_steps=round(config.warmup_ratio * self.total_steps),
                                       num_training_steps=self.total_steps)

    def start(self) -> None:
        """Resume from the latest checkpoint when asked and there is one, else measure the starting
        validation loss; then start the clock."""
        config = self.config
        latest = latest_checkpoint(self.out_dir) if config.resume and self.out_dir is not None else None
        if latest is not None:
            self.step, self.first_epoch, self.checkpoint = _resume(
                latest, self.unwrapped, self.optimizer, self.scheduler, self.run_key, self.history, self.mixer)
            self.batches.epoch = self.first_epoch - 1  # the next epoch's order, as in an uninterrupted run
        self.meter = FootprintMeter(self.acc.device, config.timing_warmup_steps)
        self.bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", leave=False,
                        disable=not (config.progress and self.acc.is_main_process))
        if latest is None:
            self.history.initial_val_loss = self._val_loss()
        self.model.train()
        self.meter.start()

    def train_epoch(self, epoch: int) -> None:
        t_epoch = time.perf_counter()
        losses, norms = [], []
        order = list(self.batches)  # this epoch's global batches
        for start in range(0, len(order), self.config.grad_accum):
            self.meter.step_begin()
            loss, norm, lr_now = self._step(order[start:start + self.config.grad_accum], epoch)
            self._end_of_step(epoch, loss, norm, lr_now)
            losses.append(loss)
            norms.append(norm)
        self._end_of_epoch(epoch, losses, norms, time.perf_counter() - t_epoch)

    def _backward(self, window: list[list[int]], epoch: int) -> float:
        """Forward and backward of every micro-batch of one optimiser step (`window`: global batches).
        Returns the step's loss: the mean over its target tokens, on every process."""
        acc = self.acc
        # The loss is normalised by the target tokens of the whole step (every micro-batch, every process),
        # known before any forward since every process holds the data, as transformers' Trainer does with
        # num_items_in_batch. DDP averages the processes' gradients and acc.backward divides by its
        # accumulation steps, so both are multiplied back: the gradients add up to the gradient of the
        # step's mean, as one process with the whole batch computes it (x 1.0, exact, for one process).
        tokens = max(sum(self.targets[i] for rows in window for i in rows), 1)
        scale = float(acc.num_processes * acc.gradient_accumulation_steps)
        total = torch.zeros((), device=acc.device)
        for k, rows in enumerate(window):
            batch = self._process_batch(self.train_enc, rows)
            # gradients are averaged across processes once per step, in the backward of the last micro-batch
            with acc.no_sync(self.model) if k < len(window) - 1 else nullcontext():
                loss, _ = self.loss_fn.summed(self.model, batch)
                acc.backward(loss / tokens * scale)
            total += loss.detach().float()
        loss = float(acc.reduce(total, reduction="sum") / tokens)
        if not math.isfinite(loss):  # the sum is shared, so every process stops together
            raise _diverged("loss", loss, self.step + 1, epoch, self.out_dir, self.scheduler)
        return loss

    def _step(self, window: list[list[int]], epoch: int) -> tuple[float, float, float]:
        """One optimiser step over `window`. Returns (loss, gradient norm before clipping, learning rate).
        After the backward the gradients are the same on every process, so are lam, the norm and the step."""
        loss = self._backward(window, epoch)
        lr_now = self.scheduler.get_last_lr()[0]

        def check(norm: float) -> None:
            if not math.isfinite(norm):
                raise _diverged("gradient norm", norm, self.step + 1, epoch, self.out_dir, self.scheduler)

        norm = self.protocol.before_optimizer_step(self.step / max(self.total_steps - 1, 1), lr_now,
                                                   check=check).total
        self.optimizer.step()
        if not self.optimizer.step_was_skipped:  # fp16: a step skipped on overflow leaves the schedule
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss, norm, lr_now

    def _end_of_step(self, epoch: int, step_loss: float, norm: float, lr_now: float) -> StepInfo:
        """The learned mixer's phi step (part of the timed step), the log, the progress bar."""
        mixer_loss = self.protocol.after_optimizer_step(self.step + 1)
        if mixer_loss is not None and not math.isfinite(mixer_loss):
            raise _diverged("learned mixer's validation loss (or its phi gradient)", mixer_loss, self.step + 1,
                            epoch, self.out_dir, self.scheduler)
        dt = self.meter.step_done()
        self.step += 1
        info = StepInfo(step=self.step, epoch=epoch, loss=step_loss, lr=lr_now, grad_norm=norm,
                        lam=self.protocol.lam(), time_s=dt, phi=self.protocol.phi(), mixer_loss=mixer_loss)
        if self.acc.is_main_process:
            for w in self.watchers:
                w.on_step_end(info)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step_loss:.3f}", epoch=epoch)
        return info

    def _end_of_epoch(self, epoch: int, losses: list[float], norms: list[float], seconds: float) -> None:
        """Validation loss, then an atomic checkpoint that carries the log and the RNG, then the callbacks."""
        acc = self.acc
        val_loss = self._val_loss()
        einfo = EpochInfo(epoch=epoch, train_loss=sum(losses) / len(losses), grad_norm=sum(norms) / len(norms),
                          val_loss=val_loss, time_s=seconds, checkpoint=None)
        if self.out_dir is not None and self.config.checkpoints:
            acc.wait_for_everyone()
            if acc.is_main_process:
                # The log so far and the RNG travel with the weights, so a resumed run continues both.
                self.checkpoint = save_checkpoint(
                    self.out_dir, self.unwrapped, self.optimizer, self.scheduler,
                    {"step": self.step, "epoch": epoch, "val_loss": val_loss, "run": self.run_key,
                     "history": self.history.to_dict(), "epoch_info": asdict(einfo), "rng": torch.get_rng_state(),
                     **({"mixer": self.mixer.state_dict()} if self.mixer is not None else {})})
                einfo.checkpoint = str(self.checkpoint)
        if acc.is_main_process:
            for w in self.watchers:
                w.on_epoch_end(einfo)

    def finish(self) -> TrainResult:
        self.bar.close()
        footprint = self.meter.result(trainable_parameters(self.unwrapped))
        self.model.eval()
        return TrainResult(history=self.history, footprint=footprint, checkpoint=self.checkpoint, steps=self.step)


def _learned_mixer(model: nn.Module, val_enc: list, collate: PairCollator | ClassCollator,
                   config: TrainConfig, acc: Accelerator, loss_fn: TargetLoss | ClassLoss) -> ValidationMixer | None:
    """The phi updater when the model has hybrid layers with the learned schedule, else None."""
    layers = learned_layers(model)
    if not layers:
        return None
    if acc.distributed_type == DistributedType.FSDP:
        # the phi step runs the unwrapped model, whose parameters FSDP keeps sharded between forwards
        raise ValueError("lam_schedule 'learned' does not run under FSDP: launch with DDP (accelerate launch "
                         "without an FSDP config) or use lam_schedule adaptive, fixed or anneal")
    adapter = next(iter(layers.values())).config
    batches = [{k: v.to(acc.device) for k, v in collate(val_enc[i:i + config.batch_size]).items()}
               for i in range(0, len(val_enc), config.batch_size)]
    return ValidationMixer(model, batches, every=adapter.mixer_every, lr=adapter.mixer_lr, seed=config.seed,
                           loss_fn=lambda m, batch: loss_fn(m, batch)[0], accelerator=acc)
