"""BOFT (Liu et al., ICLR 2024): y = R y0 with R an orthogonal butterfly product (d_out x d_out).

R comes from `ButterflyOrthogonal`: m butterfly components, each a permuted block-diagonal matrix of b x b
Cayley blocks, applied to activations with index permutations and batched block products (no dense d x d
matrix in the step). R = I at init. Merge: W <- R W0, b <- R b (y0 includes the bias); unmerge with R^T."""

from __future__ import annotations

import torch
from torch import nn

from torch.utils.checkpoint import checkpoint

from govtune.adapters.base import AdapterLayer
from govtune.adapters.butterfly import ButterflyOrthogonal
from govtune.adapters.config import AdapterConfig


def make_butterfly(features: int, config: AdapterConfig, name: str) -> ButterflyOrthogonal:
    """R for a layer with `features` outputs, with errors that name the layer and the fix."""
    b, m = config.boft_block_size, config.boft_factors
    if features % b:
        divisors = [d for d in (2, 4, 8, 16, 32, 64) if features % d == 0]
        raise ValueError(f"{name}: boft_block_size={b} does not divide the layer's {features} outputs; use a "
                         f"block size that divides {features} (e.g. {divisors}) or other target_modules")
    try:
        return ButterflyOrthogonal(features, n_factors=m, block_size=b)
    except ValueError as e:
        raise ValueError(f"{name} ({features} outputs, boft_factors={m}, boft_block_size={b}): {e}") from e


def apply_rotation(rotation: nn.Module, y: torch.Tensor, recompute: bool) -> torch.Tensor:
    """R y; with `recompute`, autograd keeps only y and re-applies R in the backward pass instead of storing
    the m intermediate activations of the butterfly (m - 1 fewer (tokens x d_out) tensors per layer, for one
    more forward of R). R in dense groups (the usual case, see `ButterflyOrthogonal`) is one product that
    saves only y anyway, so it is never recomputed."""
    if recompute and torch.is_grad_enabled() and not getattr(rotation, "dense_groups", False):
        return checkpoint(rotation, y, use_reentrant=False)
    return rotation(y)


class BoftLayer(AdapterLayer):
    method = "boft"

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        self.boft_R = make_butterfly(self.out_features, config, name).to(
            device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.checkpoint = config.boft_checkpoint

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_rotation(self.boft_R, self.base_layer(x), self.checkpoint)

    def _merge(self, w, b):
        r = self.boft_R.matrix().float()
        return r @ w, None if b is None else r @ b

    def _unmerge(self, w, b):
        r = self.boft_R.matrix().float()
        return r.T @ w, None if b is None else r.T @ b
