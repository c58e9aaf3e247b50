"""govtune's adapters inside transformers' `Trainer` and TRL's `SFTTrainer`.

    model = govtune.inject(model, AdapterConfig(method="hybrid"), calibration=batches)
    trainer = SFTTrainer(model=model, args=SFTConfig(...), train_dataset=..., eval_dataset=...)
    prepare_trainer(trainer)
    trainer.train()

`prepare_trainer` adds a `GovtuneCallback` that does, per optimiser step, what `govtune.training.train` does
around it, through the same `govtune.training.step.StepProtocol`: each hybrid layer's lam from the fresh
gradients, the gradient norms, clipping, each unitary_full module's Riemannian step; after the step, every
`mixer_every` steps, the learned mixer's phi step on an evaluation batch. lam, phi and the branch gradient
norms go into the Trainer's log (so TensorBoard, W&B or trackio show them); the adapter
(`govtune.save_adapter`) and the mixer's optimiser state are written into every Trainer checkpoint and
restored by `trainer.train(resume_from_checkpoint=...)`.
Unless the Trainer was given one, its optimiser (the class and options of `args.optim`) is built over
govtune's parameter groups (`govtune.training.optim.param_groups`, as in govtune's loop): the unitary_full
parameters stay out, the hybrid's branches can train at rates of their own (`lr_branches`).

Why the callback clips, not the Trainer: the Trainer clips every parameter's gradient before its
`on_pre_optimizer_step` event, the first event that sees the gradients of a step. lam must read the
gradients before clipping, and the unitary_full parameters must stay out of the clipped set (they are not
the optimiser's: their step is a rotation on the unitary group). So `prepare_trainer` moves
`args.max_grad_norm` into the callback and sets the Trainer's to 0; the Trainer still logs the gradient norm
before clipping (`grad_norm`), over the same parameters as govtune's loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_optimizer import is_optimizer_factory

from govtune.adapters import learned_layers, load_adapter, riemannian_modules, save_adapter
from govtune.adapters.inject import adapter_state
from govtune.adapters.io import CONFIG_NAME, read_adapter_config
from govtune.atomic import atomic_write_with
from govtune.text.target_loss import TargetLoss
from govtune.training.mixer import ValidationMixer
from govtune.training.optim import param_groups
from govtune.training.step import StepProtocol

ADAPTER_DIR = "govtune_adapter"  # inside each Trainer checkpoint: the files of govtune.save_adapter
STATE_FILE = "govtune_state.pt"  # inside each Trainer checkpoint: the learned mixer's optimiser state


def prepare_trainer(trainer: Trainer, lr_branches: dict[str, float] | None = None,
                    layer_logs: bool = True) -> "GovtuneCallback":
    """Make `trainer` (transformers' Trainer or a subclass such as TRL's SFTTrainer) train the govtune
    adapter injected into `trainer.model`; call before `trainer.train()`. Returns the callback it added.

    lr_branches: the hybrid's branches at rates of their own, as `TrainConfig.lr_branches`
    (govtune.training.optim). layer_logs=False logs lam and phi as mean, min and max over the layers
    instead of one value per layer (a console log stays readable; TensorBoard or W&B handle either)."""
    model = trainer.model
    state = adapter_state(model)
    if state is None:
        raise ValueError("the Trainer's model has no govtune adapters: call govtune.inject(model, "
                         "AdapterConfig(method=...)) before building the Trainer, then prepare_trainer(trainer)")
    if any(isinstance(cb, GovtuneCallback) for cb in trainer.callback_handler.callbacks):
        raise ValueError("prepare_trainer was already called on this Trainer: call it once")
    if getattr(trainer, "is_deepspeed_enabled", False):
        raise ValueError("govtune's callback works on the gradients between backward and the optimiser step, "
                         "which DeepSpeed's engine keeps to itself: train on one device or with DDP "
                         "(accelerate launch)")
    if getattr(trainer, "model_init", None) is not None:
        raise ValueError("the Trainer has a model_init, which builds a new model at train(): inject the adapter "
                         "into a model, pass it as model=, then prepare_trainer(trainer)")
    if trainer.optimizer is None:
        trainer.optimizer = _optimizer(trainer, model, lr_branches)
    else:
        _check_optimizer(trainer.optimizer, model, lr_branches)
    callback = GovtuneCallback(trainer, layer_logs)
    # First in the list: its on_log adds lam and phi to the logs before the reporting callbacks see them.
    trainer.callback_handler.callbacks.insert(0, callback)
    _hook_resume(trainer, callback)
    return callback


def _optimizer(trainer: Trainer, model: nn.Module, lr_branches: dict[str, float] | None) -> torch.optim.Optimizer:
    """The Trainer's optimiser class and options (`args.optim`, `optimizer_cls_and_kwargs`) over govtune's
    parameter groups (govtune.training.optim.param_groups, as in govtune's loop): the unitary_full
    parameters left out (their Riemannian step keeps U unitary), the hybrid's branches at their own rates."""
    args = trainer.args
    cls, kwargs = trainer.optimizer_cls_and_kwargs or Trainer.get_optimizer_cls_and_kwargs(args, model)
    if is_optimizer_factory(cls) or {"params", "model", "optimizer_dict"} & set(kwargs):
        raise ValueError(f"optim={args.optim!r} builds its own parameter groups, which would put the unitary_full "
                         f"parameters in the optimiser and drop the hybrid's branch rates: use an AdamW-family "
                         f"optim, or pass optimizers=(your_optimizer(govtune.training.optim.param_groups(model, "
                         f"lr)), None) to the Trainer")
    groups = param_groups(model, args.learning_rate, args.weight_decay, lr_branches)
    # Everything trainable is Riemannian (unitary_full): the Trainer still wants an optimiser, and a schedule
    # whose learning rate the Riemannian step follows, so it gets a placeholder, as in govtune's loop.
    return cls(groups or [{"params": [torch.zeros(1, requires_grad=True)]}], **kwargs)


def _check_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, lr_branches) -> None:
    """An optimiser given to the Trainer must not hold the Riemannian parameters (unitary_full's U): its step
    would move U off the unitary group."""
    if lr_branches is not None:
        raise ValueError("lr_branches sets the rates of the optimiser prepare_trainer builds, but the Trainer "
                         "already has one: build it from govtune.training.optim.param_groups(model, lr, "
                         "lr_branches=...), or pass no optimizers= to the Trainer")
    names = {id(p): n for n, p in model.named_parameters()}
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    clash = [names[id(p)] for m in riemannian_modules(model) for p in m.parameters() if id(p) in held]
    if clash:
        raise ValueError(
            f"the Trainer's optimizer holds {len(clash)} unitary_full parameters (e.g. {clash[0]}), which are "
            f"trained by their own Riemannian step: build the optimizer from "
            f"govtune.training.optim.param_groups(model, lr) (or govtune.adapters.optimizer_parameters(model)), "
            f"or pass no optimizers= and let prepare_trainer build it")


def _hook_resume(trainer: Trainer, callback: "GovtuneCallback") -> None:
    """Check and restore govtune's state when the Trainer resumes. The Trainer passes the checkpoint's path
    to no callback event, only to its `_load_from_checkpoint`, which it calls before loading anything (on
    one process, DDP; after wrapping under FSDP): wrapping that method is the one place that sees it."""
    original = trainer._load_from_checkpoint

    def load_from_checkpoint(resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        callback.check_checkpoint(Path(resume_from_checkpoint))  # before the Trainer loads anything
        original(resume_from_checkpoint, model)
        callback.restore(Path(resume_from_checkpoint))

    trainer._load_from_checkpoint = load_from_checkpoint


class GovtuneCallback(TrainerCallback):
    """The per-step work of govtune's training loop, as Trainer events (see the module docstring). Built by
    `prepare_trainer`, which also keeps the unitary_full parameters out of the optimiser."""

    def __init__(self, trainer: Trainer, layer_logs: bool = True):
        self.trainer = trainer
        self.layer_logs = layer_logs
        self.model = trainer.model
        self.config = adapter_state(self.model)["config"]
        args = trainer.args
        max_grad_norm = args.max_grad_norm if args.max_grad_norm and args.max_grad_norm > 0 else None
        args.max_grad_norm = 0.0  # the callback clips, after lam has read the gradients (module docstring)
        # the Trainer's accelerator at the time of the step: a hyperparameter search builds a new one per trial
        self.protocol = StepProtocol(self.model, lambda params, norm: trainer.accelerator.clip_grad_norm_(params, norm),
                                     max_grad_norm)
        self.resumed_state: dict[str, Any] | None = None
        self.last: dict[str, float] = {}  # the latest step's values for the log

    # -- events -------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if learned_layers(self.model):
            self.protocol.mixer = self._make_mixer(args)
            if self.resumed_state is not None:
                self.protocol.mixer.load_state_dict(self.resumed_state["mixer"])

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        """lam from the fresh gradients, the branch norms, clipping, the Riemannian step at the step's
        learning rate (govtune.training.step). The Trainer logs the total norm itself."""
        self.last = self.protocol.before_optimizer_step(
            state.global_step / max(state.max_steps - 1, 1), kwargs["lr_scheduler"].get_last_lr()[0],
            total=False, branches=True).branches

    def on_step_end(self, args, state, control, **kwargs):
        loss = self.protocol.after_optimizer_step(state.global_step)
        if loss is not None:
            self.last["mixer_loss"] = loss
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the learned mixer's validation loss (or its phi gradient) is {loss} at step "
                    f"{state.global_step}: phi was left unchanged; lower mixer_lr or the learning rate")

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Add lam (per hybrid layer and the mean), phi and the branch gradient norms to a training log.
        The Trainer appended its copy of `logs` to `state.log_history` before this event: update it too."""
        if logs is None or "loss" not in logs:
            return  # an evaluation log or the final summary
        extra = self._log_values()
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir():  # the Trainer saved elsewhere (a hyperparameter search's run directory)
            raise FileNotFoundError(f"the Trainer's checkpoint for step {state.global_step} is not {checkpoint}: "
                                    f"govtune's callback writes its adapter there; train without a "
                                    f"hyperparameter search, or save the adapter with govtune.save_adapter")
        save_adapter(self.model, checkpoint / ADAPTER_DIR)
        if self.protocol.mixer is not None:
            atomic_write_with(checkpoint / STATE_FILE,
                              lambda tmp: torch.save({"mixer": self.protocol.mixer.state_dict()}, tmp))

    # -- resume -------------------------------------------------------------------------------------
    def check_checkpoint(self, checkpoint: Path) -> None:
        """Refuse, before anything is loaded, a checkpoint that holds no govtune adapter or another one."""
        if not (checkpoint / ADAPTER_DIR / CONFIG_NAME).is_file():
            raise ValueError(f"cannot resume from {checkpoint}: it holds no govtune adapter ({ADAPTER_DIR}/), so "
                             f"it was not written by a Trainer prepared with govtune.integrations.prepare_trainer; "
                             f"resume from a checkpoint of such a run, or start over with another output_dir")
        saved, _ = read_adapter_config(checkpoint / ADAPTER_DIR)
        ours = self.config
        if saved.to_dict() != ours.to_dict():
            a, b = saved.to_dict(), ours.to_dict()
            differ = ", ".join(f"{k} {a[k]!r} != {b[k]!r}" for k in a if a[k] != b.get(k))
            raise ValueError(f"cannot resume from {checkpoint}: its adapter is a {saved.method} adapter with another "
                             f"config than this model's {ours.method} adapter ({differ}); inject the checkpoint's "
                             f"AdapterConfig (read it from {checkpoint / ADAPTER_DIR / CONFIG_NAME}) into a fresh "
                             f"model, or start over with another output_dir")
        if learned_layers(self.model) and not (checkpoint / STATE_FILE).is_file():
            raise ValueError(f"cannot resume from {checkpoint}: it has no {STATE_FILE} with the learned mixer's "
                             f"optimiser state; resume from a checkpoint written with the learned mixer")

    def restore(self, checkpoint: Path) -> None:
        """After the Trainer loaded its checkpoint: the adapter from govtune's files (which also checks the
        base model's fingerprint), and the mixer's optimiser state for on_train_begin."""
        load_adapter(self.model, checkpoint / ADAPTER_DIR)
        if (checkpoint / STATE_FILE).is_file():
            self.resumed_state = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)

    # -- helpers ------------------------------------------------------------------------------------
    def _make_mixer(self, args) -> ValidationMixer:
        trainer = self.trainer
        if getattr(trainer, "is_fsdp_enabled", False):
            # the phi step runs the unwrapped model, whose parameters FSDP keeps sharded between forwards
            raise ValueError("lam_schedule 'learned' does not run under FSDP: launch with DDP (accelerate launch "
                             "without an FSDP config) or use lam_schedule adaptive, fixed or anneal")
        if trainer.eval_dataset is None:
            raise ValueError("lam_schedule 'learned' trains phi on the evaluation loss, but the Trainer has no "
                             "eval_dataset: pass eval_dataset= to the Trainer, or use lam_schedule adaptive, "
                             "fixed or anneal")
        # The Trainer's own evaluation batches (its collator, column handling and device placement), kept in
        # memory: the mixer picks one per update by a seeded order (ValidationMixer.batch_for).
        batches = [dict(b) for b in trainer.get_eval_dataloader()]
        loss_fn = TargetLoss(self.model)
        return ValidationMixer(self.model, batches, every=self.config.mixer_every, lr=self.config.mixer_lr,
                               seed=args.seed, loss_fn=lambda m, batch: loss_fn(m, batch)[0],
                               accelerator=trainer.accelerator)

    def _log_values(self) -> dict[str, float]:
        values = dict(self.last)
        for key, per_layer in (("lam", self.protocol.lam()), ("phi", self.protocol.phi())):
            if not per_layer:
                continue
            v = list(per_layer.values())
            values[f"{key}/mean"] = sum(v) / len(v)
            if self.layer_logs:
                values.update({f"{key}/{name}": x for name, x in per_layer.items()})
            else:
                values[f"{key}/min"], values[f"{key}/max"] = min(v), max(v)
        return values

