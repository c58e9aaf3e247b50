"""BOFT (Liu et al., ICLR 2024): y = R y0 with R an orthogonal butterfly product (d_out x d_out), or, with
`boft_side="input"`, y = W0 R x + b (R d_in x d_in, PEFT's BOFT).

R comes from `ButterflyOrthogonal`: m butterfly components, each a permuted block-diagonal matrix of b x b
Cayley blocks, applied to the frozen weight as R's small dense diagonal groups (or with index permutations
and batched block products; no dense d x d matrix in the step), see `rotated_linear`. R = I at init.
Merge: W <- R W0, b <- R b (y0 includes the bias); unmerge with R^T."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from govtune.adapters.base import AdapterLayer
from govtune.adapters.butterfly import ButterflyOrthogonal
from govtune.adapters.config import AdapterConfig


def make_butterfly(features: int, config: AdapterConfig, name: str, side: str = "outputs") -> ButterflyOrthogonal:
    """R for a layer with `features` outputs (or inputs), with errors that name the layer and the fix."""
    b, m = config.boft_block_size, config.boft_factors
    if features % b:
        divisors = [d for d in (2, 4, 8, 16, 32, 64) if features % d == 0]
        raise ValueError(f"{name}: boft_block_size={b} does not divide the layer's {features} {side}; use a "
                         f"block size that divides {features} (e.g. {divisors}) or other target_modules")
    try:
        return ButterflyOrthogonal(features, n_factors=m, block_size=b)
    except ValueError as e:
        raise ValueError(f"{name} ({features} {side}, boft_factors={m}, boft_block_size={b}): {e}") from e


def rotated_linear(layer: AdapterLayer, rotation: ButterflyOrthogonal, x: torch.Tensor, recompute: bool,
                   lam: float | torch.Tensor | None = None,
                   lowrank: tuple[torch.Tensor, torch.Tensor, float] | None = None) -> torch.Tensor:
    """The layer's output with R applied to its frozen weight: x (R W0)^T + R b, which is R y0. For the
    hybrid (`lam` given: a float, or a 0-d tensor when lam is differentiated) the mix lam y0 + (1 - lam) R y0,
    as x M^T + lerp(R b, b, lam) with M = lerp(R W0, W0, lam).

    Why the weight and not the activations: R W0 costs a few small batched products per step whatever the
    number of tokens, and the layer is then one linear map, as fast as the frozen one. Rotating the
    activations instead costs a pass over every (token x d_out) output forward and backward, plus layout
    copies. Step times against LoRA: bench/results/adapter_step.md (`python bench/adapter_step.py`).
    Backward adds one (d_out x d_in) weight-gradient product per layer, as for any rotation of W0.

    `lowrank` = (a, b, scale) adds scale * b a to the weight (the hybrid's low-rank branch, b a of rank 2r):
    one addmm on a weight-sized matrix that exists anyway, instead of two token-sized products forward and
    four backward; its gradients come from the weight gradient backward computes for R anyway.

    With `recompute`, autograd keeps a recipe instead of M (a weight-sized tensor per adapted layer) and
    rebuilds M in backward from the same R (no tokens involved), so training stores only x, as LoRA does.
    PEFT's OFT rotates the weight too; PEFT's BOFT builds a dense d x d R to do it."""
    groups = rotation.group_blocks() if rotation.dense_groups else None

    def mix(w: torch.Tensor) -> torch.Tensor:  # R w, or lam w + (1 - lam) R w, for w of shape (d_out, k)
        rw = rotation.left_multiply(w, groups)
        if lam is None:
            return rw
        # Under autocast (bf16 training) R w comes out in the autocast dtype and w does not; lerp is no
        # autocast op and wants one dtype for all three.
        return torch.lerp(rw, w.to(rw.dtype), lam.to(rw.dtype) if torch.is_tensor(lam) else lam)

    def build(w: torch.Tensor) -> torch.Tensor:  # the layer's weight: mix(W0) (+ scale b a)
        m = mix(w)
        return m if lowrank is None else torch.addmm(m, lowrank[1], lowrank[0], alpha=lowrank[2])

    w0, b0 = layer.weight, layer.bias
    if not (recompute and torch.is_grad_enabled()):
        weight = build(w0)
        bias = None if b0 is None else mix(b0.reshape(-1, 1)).view(-1)
        return F.linear(x, weight, bias)
    # Saved tensors that parameters determine are stored as recipes (storage -> rebuild): the rotated weight
    # and, on a quantised base, the dequantised W0 (a float copy the products would otherwise keep until
    # backward, giving back the memory quantisation saved). Same parameters in backward: the optimiser steps
    # after it.
    recipes: dict[int, Callable[[], torch.Tensor]] = {}
    if layer.quantized:
        recipes[w0.untyped_storage().data_ptr()] = lambda: layer.weight
    # Backward runs outside the forward's autocast: rebuild under the same autocast state, so that the rebuilt
    # tensors have the dtype and values forward saved (bf16 training would otherwise get a float32 M).
    device = w0.device.type
    autocast = dict(device_type=device, enabled=torch.is_autocast_enabled(device),
                    dtype=torch.get_autocast_dtype(device))

    def pack(t: torch.Tensor):
        recipe = recipes.get(t.untyped_storage().data_ptr())
        return t if recipe is None else (recipe, t.size(), t.stride(), t.storage_offset())

    def unpack(saved):
        if isinstance(saved, tuple):
            recipe, *view = saved
            with torch.no_grad(), torch.autocast(**autocast):
                return recipe().as_strided(*view)
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        weight = build(w0)
        bias = None if b0 is None else mix(b0.reshape(-1, 1)).view(-1)
        # linear keeps W^T, a view of the rotated weight: rebuilt from the layer's current W0
        recipes[weight.untyped_storage().data_ptr()] = lambda: build(layer.weight)
        return F.linear(x, weight, bias)


class BoftLayer(AdapterLayer):
    """BOFT on the layer's output (`boft_side="output"`, the default: y = R y0, R rotates W0 and the bias)
    or on its input (`boft_side="input"`: y = W0 R x + b, PEFT's BOFT, exported by `export_peft`; R is
    applied to the activations as PEFT does, so a quantised base is used as it is)."""

    method = "boft"

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        self.input_side = config.boft_side == "input"
        features = self.in_features if self.input_side else self.out_features
        self.boft_R = make_butterfly(features, config, name, "inputs" if self.input_side else "outputs").to(
            device=base_layer.weight.device, dtype=self.compute_dtype)
        self.checkpoint = config.boft_checkpoint

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_side:
            return self.base_layer(self.boft_R(x))  # W0 (R x): x @ R^T along the features
        return rotated_linear(self, self.boft_R, x, self.checkpoint)

    def _merge(self, w, b):
        r = self.boft_R.matrix().float()
        if self.input_side:
            return w @ r, b
        return r @ w, None if b is None else r @ b

    def _unmerge(self, w, b):
        r = self.boft_R.matrix().float()
        if self.input_side:
            return w @ r.T, b
        return r.T @ w, None if b is None else r.T @ b
