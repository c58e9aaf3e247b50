"""BOFT (Liu et al., ICLR 2024): y = R y0 with R an orthogonal butterfly product (d_out x d_out).

R comes from `ButterflyOrthogonal`: m butterfly components, each a permuted block-diagonal matrix of b x b
Cayley blocks, applied to activations as R's small dense diagonal groups (or with index permutations and
batched block products; no dense d x d matrix in the step). R = I at init. Merge: W <- R W0, b <- R b (y0 includes the bias); unmerge with R^T."""

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


def _rotated_output(base: nn.Module, rotation: nn.Module, x: torch.Tensor, lam: float | None) -> torch.Tensor:
    y0 = base(x)
    ry = rotation(y0)
    # lerp(ry, y0, lam) = lam y0 + (1 - lam) R y0: the hybrid's mix, in one pass.
    return ry if lam is None else torch.lerp(ry, y0, lam)


def rotated_output(base: nn.Module, rotation: nn.Module, x: torch.Tensor, recompute: bool,
                   lam: float | None = None) -> torch.Tensor:
    """R W0 x (+ bias inside y0), or lam y0 + (1 - lam) R y0 for the hybrid.

    With `recompute`, autograd keeps only x and recomputes y0 = W0 x and R y0 in the backward pass. x is
    what a LoRA branch on the same input stores anyway (and q, k, v share it), while y0 is one more
    (tokens x d_out) tensor per adapted layer: this is what keeps BOFT's training memory at LoRA's, for
    one more product with the frozen W0 per layer in backward."""
    if recompute and torch.is_grad_enabled():
        return checkpoint(_rotated_output, base, rotation, x, lam, use_reentrant=False)
    return _rotated_output(base, rotation, x, lam)


class BoftLayer(AdapterLayer):
    method = "boft"

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        self.boft_R = make_butterfly(self.out_features, config, name).to(
            device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.checkpoint = config.boft_checkpoint

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        return rotated_output(self.base_layer, self.boft_R, x, self.checkpoint)

    def _merge(self, w, b):
        r = self.boft_R.matrix().float()
        return r @ w, None if b is None else r @ b

    def _unmerge(self, w, b):
        r = self.boft_R.matrix().float()
        return r.T @ w, None if b is None else r.T @ b
