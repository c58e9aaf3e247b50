"""The learned mixer inside a training run: when phi is updated, on which validation batch, and what a
checkpoint keeps of it (phi itself travels with the adapter weights; its Adam state travels here).

Every `mixer_every` optimiser steps, one validation batch: the loss in eval mode (no dropout, the loss
`evaluate_loss` reports), its gradient to phi only (govtune.adapters.mixer_gradient), averaged across
processes, then phi's own Adam step. The batch for the n-th update is a pure function of (seed, n): the
batches are visited in a seeded random order, a new order per pass, so a resumed run uses the same batches
as an uninterrupted one without saving any iterator."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from govtune.adapters import MixerOptimizer, mixer_gradient, mixer_parameters


class ValidationMixer:
    """Steps phi of every learned hybrid layer from validation batches (see module docstring)."""

    def __init__(self, model: nn.Module, batches: list[dict[str, torch.Tensor]], every: int, lr: float,
                 seed: int, loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
                 accelerator=None):
        if not batches:
            raise ValueError("lam_schedule 'learned' trains the mixer on the validation loss, but there is no "
                             "validation data: pass val_pairs to train() (in a study: val_per_language >= 1), or "
                             "use lam_schedule adaptive, fixed or anneal")
        self.model = model
        self.batches = batches
        self.every = every
        self.seed = seed
        self.loss_fn = loss_fn
        self.accelerator = accelerator
        self.optimizer = MixerOptimizer(model, lr)

    def batch_for(self, update: int) -> dict[str, torch.Tensor]:
        """The validation batch of the `update`-th phi update (0-based)."""
        n = len(self.batches)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + update // n)  # one order per pass
        return self.batches[int(torch.randperm(n, generator=g)[update % n])]

    def maybe_step(self, step: int) -> float | None:
        """After optimiser step `step` (1-based): update phi if one is due; returns the validation batch's
        loss, or None when no update was due. A non-finite loss or phi gradient leaves phi unchanged and
        returns nan (the loop stops the run)."""
        if step % self.every:
            return None
        batch = self.batch_for(step // self.every - 1)
        was_training = self.model.training
        self.model.eval()
        try:
            with self.accelerator.autocast() if self.accelerator is not None else nullcontext():
                loss = mixer_gradient(self.model, lambda m: self.loss_fn(m, batch))
        finally:
            self.model.train(was_training)
        phis = mixer_parameters(self.model)
        if self.accelerator is not None and self.accelerator.num_processes > 1:
            # Every process differentiates the same batch; averaging keeps the copies of phi equal even
            # where kernels are not bitwise deterministic.
            mean = self.accelerator.reduce(torch.stack([p.grad for p in phis]), reduction="mean")
            for p, g in zip(phis, mean):
                p.grad = g.clone()
        if not (math.isfinite(loss) and all(bool(torch.isfinite(p.grad).all()) for p in phis)):
            for p in phis:
                p.grad = None
            return math.nan
        self.optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "every": self.every, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
