"""What happens around an optimiser step when govtune's adapters train, written once for govtune's loop
(govtune.training.loop) and for transformers' Trainer (govtune.integrations.trainer.GovtuneCallback).

After the backward, before the optimiser step, in this order:
  1. each hybrid layer's lam from the fresh gradients (`govtune.adapters.after_backward`): lam must read
     them before clipping changes them;
  2. the gradient norms before clipping (what each loop logs; the loop also stops a run on a non-finite one);
  3. clipping of the optimiser's parameters (the unitary_full parameters are not among them);
  4. each unitary_full module's Riemannian step at the step's learning rate (those parameters stay out of the
     optimiser: their step is a rotation on the unitary group).
Then the optimiser steps, and after it, every `mixer_every` steps, the learned mixer's phi step on one
validation batch (govtune.training.mixer.ValidationMixer). lam and phi are read for the log last."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from govtune.adapters import after_backward, grad_norm, hybrid_layers, mixing, phi_values, riemannian_modules
from govtune.training.mixer import ValidationMixer


@dataclass
class StepNorms:
    """Gradient norms before clipping, as the caller asked for them."""

    total: float | None = None  # every trainable parameter: the optimiser's and the Riemannian ones
    branches: dict[str, float] = field(default_factory=dict)  # grad_norm/lora, grad_norm/boft, grad_norm/riemannian


class StepProtocol:
    """The adapter work of one optimiser step, for a model with govtune adapters (see module docstring).

    clip: clips `params` to a norm, `accelerate.Accelerator.clip_grad_norm_` of the loop's accelerator (it
    knows DDP, FSDP and fp16 loss scaling). The learned mixer, built by the caller from its own validation
    batches, is attached as `mixer`."""

    def __init__(self, model: nn.Module, clip: Callable[[list[nn.Parameter], float], object],
                 max_grad_norm: float | None, mixer: ValidationMixer | None = None):
        self.model = model
        self.clip = clip
        self.max_grad_norm = max_grad_norm
        self.mixer = mixer
        self.riemannian = list(riemannian_modules(model))
        riem_ids = {id(p) for m in self.riemannian for p in m.parameters()}
        self.params = [p for p in model.parameters() if p.requires_grad and id(p) not in riem_ids]
        self.riem_params = [p for m in self.riemannian for p in m.parameters() if p.requires_grad]
        self.hybrids = hybrid_layers(model)

    def before_optimizer_step(self, progress: float, lr: float, total: bool = True, branches: bool = False,
                              check: Callable[[float], None] | None = None) -> StepNorms:
        """Steps 1-4 of the module docstring. progress: the fraction of training done (the anneal schedule);
        lr: the step's learning rate. `total` / `branches`: which norms to compute; `check(total)` runs
        before anything is clipped or stepped (the loop raises there on a non-finite norm)."""
        after_backward(self.model, progress)
        norms = StepNorms(total=self.grad_norm() if total else None,
                          branches=self.branch_norms() if branches else {})
        if check is not None and norms.total is not None:
            check(norms.total)
        if self.max_grad_norm is not None and self.params:
            self.clip(self.params, self.max_grad_norm)
        for m in self.riemannian:
            m.riemannian_step(lr)
        return norms

    def after_optimizer_step(self, step: int) -> float | None:
        """The learned mixer's phi step when one is due after optimiser step `step` (1-based): its validation
        loss (nan when non-finite: phi was left unchanged), or None."""
        return self.mixer.maybe_step(step) if self.mixer is not None else None

    def grad_norm(self) -> float:
        """Norm over every trainable parameter, the optimiser's and the Riemannian ones."""
        return math.hypot(grad_norm(self.params), grad_norm(self.riem_params))

    def branch_norms(self) -> dict[str, float]:
        """Per hybrid branch, and of the Riemannian parameters (only the keys the model has)."""
        out = {}
        if self.hybrids:
            out["grad_norm/lora"] = grad_norm(p for m in self.hybrids.values() for p in m.lora_parameters())
            out["grad_norm/boft"] = grad_norm(p for m in self.hybrids.values() for p in m.boft_parameters())
        if self.riem_params:
            out["grad_norm/riemannian"] = grad_norm(self.riem_params)
        return out

    def lam(self) -> dict[str, float]:
        """lam per hybrid layer, as the next forward uses it."""
        return {k: float(v) for k, v in mixing(self.model).items()}

    def phi(self) -> dict[str, float]:
        """phi per learned hybrid layer."""
        return phi_values(self.model)
