"""What a training loop calls around the optimiser: hybrid lam updates, lam logs, Riemannian modules."""

from __future__ import annotations

from torch import nn

from govtune.adapters.hybrid import HybridLayer, update_adaptive_lams
from govtune.adapters.inject import adapter_layers
from govtune.adapters.unitary import UnitaryFullLayer


def hybrid_layers(model: nn.Module) -> dict[str, HybridLayer]:
    return {n: m for n, m in adapter_layers(model).items() if isinstance(m, HybridLayer)}


def after_backward(model: nn.Module, progress: float) -> dict[str, float]:
    """Update every hybrid layer's lam from the current gradients (call after loss.backward(), before
    optimizer.zero_grad()); progress in [0, 1] is the fraction of training done (anneal schedule).
    Returns the new lam per layer; a no-op for models without hybrid layers."""
    if not 0.0 <= float(progress) <= 1.0:
        raise ValueError(f"progress must be the fraction of training done, in [0, 1]; got {progress!r}")
    layers = hybrid_layers(model)
    adaptive = [layer for layer in layers.values() if layer.config.lam_schedule == "adaptive"]
    if adaptive:
        update_adaptive_lams(adaptive)
    return {name: layer.lam_value if layer.config.lam_schedule == "adaptive" else layer.update_lam(progress)
            for name, layer in layers.items()}


def mixing(model: nn.Module) -> dict[str, float]:
    """Current lam per hybrid layer."""
    return {name: layer.lam_value for name, layer in hybrid_layers(model).items()}


def lam_history(model: nn.Module) -> dict[str, list[float]]:
    """Every lam each hybrid layer has taken, one entry per after_backward call."""
    return {name: list(layer.lam_history) for name, layer in hybrid_layers(model).items()}


def riemannian_modules(model: nn.Module) -> list[nn.Module]:
    """Modules trained by their own `.riemannian_step(lr)` after backward (unitary_full's dense U); leave
    their parameters out of the optimiser (see `optimizer_parameters`)."""
    return [m.unitary_U for m in adapter_layers(model).values() if isinstance(m, UnitaryFullLayer)]


def optimizer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters for an ordinary optimiser: those requiring grad, minus Riemannian ones."""
    excluded = {id(p) for m in riemannian_modules(model) for p in m.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in excluded]
