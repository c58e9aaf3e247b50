"""Shared helpers of the adapter tests: inputs, calibration batches, a non-identity perturbation."""

from __future__ import annotations

import torch

from govtune.adapters import AdapterConfig, adapter_layers, inject, riemannian_modules
from govtune.adapters.hybrid import HybridLayer
from govtune.models import tiny_model

METHODS = ("lora", "lora_ga", "boft", "unitary", "unitary_full", "hybrid")
MODELS = ("tiny-llama", "tiny-bloom")


def inputs(seed: int = 0, batch: int = 2, length: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 300, (batch, length), generator=g)


def calibration(n: int = 2) -> list[dict[str, torch.Tensor]]:
    return [{"input_ids": inputs(100 + i), "labels": inputs(100 + i)} for i in range(n)]


def logits(model, ids: torch.Tensor | None = None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=inputs() if ids is None else ids).logits


def adapted(kind: str, method: str, **overrides):
    """(model, config): a fresh tiny model with the adapter injected (calibrated where needed)."""
    model, _ = tiny_model(kind)
    config = AdapterConfig(method=method, r=overrides.pop("r", 4), **overrides)
    inject(model, config, calibration=calibration(), progress=False)
    return model, config


@torch.no_grad()
def perturb(model, seed: int = 1, scale: float = 0.1) -> None:
    """Move every adapter away from its initial state so that merge and save tests cannot pass trivially."""
    g = torch.Generator().manual_seed(seed)
    dense = {id(p) for m in riemannian_modules(model) for p in m.parameters()}
    for layer in adapter_layers(model).values():
        for name, p in layer.named_parameters():
            if name.startswith("base_layer.") or id(p) in dense:
                continue
            p.add_(scale * torch.randn(p.shape, generator=g).to(p.dtype))
        if isinstance(layer, HybridLayer):
            layer.set_lam(0.3)
    with torch.enable_grad():
        for m in riemannian_modules(model):  # a dense U moves only along the unitary group
            m.weight.grad = torch.randn(m.weight.shape, generator=g).to(m.weight.dtype)
            m.riemannian_step(0.05)
