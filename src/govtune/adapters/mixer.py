"""The learned mixer (hybrid `lam_schedule="learned"`): one phi per hybrid layer, trained on the validation
loss only.

    lam_l = lam_min + (1 - 2 lam_min) sigmoid(phi_l)

First-order bilevel, as in DARTS (Liu et al., ICLR 2019): the adapter weights w follow the training loss,
phi follows the validation loss at the current w, dropping the second-order term dL_val/dw dw*/dphi. The
training forward reads lam as a float (no autograd edge) and phi has requires_grad=False, so the training
loss cannot reach phi and no optimiser over the trainable parameters holds it. `mixer_gradient` runs one
forward in which lam is a function of phi and differentiates with phi as the only inputs, so no other
parameter's .grad is touched; `MixerOptimizer` (its own Adam) then steps phi and lam follows.

When the updates happen and on which batch is the training loop's business (govtune.training.mixer)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from govtune.adapters.hybrid import HybridLayer
from govtune.adapters.inject import adapter_layers


def learned_layers(model: nn.Module) -> dict[str, HybridLayer]:
    """Hybrid layers with the learned schedule, by module name."""
    return {n: m for n, m in adapter_layers(model).items() if isinstance(m, HybridLayer) and m.learned}


def mixer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """phi of every learned hybrid layer, in module order (empty for any other model)."""
    return [m.mixer_phi for m in learned_layers(model).values()]


def phi_values(model: nn.Module) -> dict[str, float]:
    """Current phi per learned hybrid layer."""
    return {n: float(m.mixer_phi) for n, m in learned_layers(model).items()}


@contextmanager
def mixer_forward(model: nn.Module) -> Iterator[list[nn.Parameter]]:
    """Within this block the model's forward reads every learned lam as lam(phi), differentiable in phi;
    yields the phi parameters. On exit phi is frozen again and the forward reads the float lam."""
    layers = list(learned_layers(model).values())
    try:
        for m in layers:
            m.mixer_phi.requires_grad_(True)
            m.mixer_grad = True
        yield [m.mixer_phi for m in layers]
    finally:
        for m in layers:
            m.mixer_grad = False
            m.mixer_phi.requires_grad_(False)


def mixer_gradient(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor]) -> float:
    """Set phi.grad to d loss_fn(model) / d phi for every learned layer and return the loss. `loss_fn` runs
    the forward (e.g. the loss of one validation batch). No other parameter's .grad changes."""
    with mixer_forward(model) as phis:
        if not phis:
            raise ValueError("the model has no hybrid layer with lam_schedule='learned': nothing to learn")
        loss = loss_fn(model)
        grads = torch.autograd.grad(loss, phis, allow_unused=True)
    for p, g in zip(phis, grads):
        p.grad = torch.zeros_like(p) if g is None else g.detach()
    return float(loss.detach())


class MixerOptimizer:
    """phi's own Adam, apart from the optimiser of the adapter weights. Call `step()` after
    `mixer_gradient`: it steps phi, clears phi.grad and sets every learned lam from the new phi."""

    def __init__(self, model: nn.Module, lr: float):
        self.layers = list(learned_layers(model).values())
        if not self.layers:
            raise ValueError("the model has no hybrid layer with lam_schedule='learned': nothing to optimise")
        # its own optimiser, one group named like the adapter's (govtune.training.optim.param_groups)
        self.optimizer = torch.optim.Adam([{"name": "phi", "params": [m.mixer_phi for m in self.layers], "lr": lr}])

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        for m in self.layers:
            m.sync_lam()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
