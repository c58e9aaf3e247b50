"""Unitary adapters (uRNN-inspired, Arjovsky et al. 2016): y = W0 (U x) + b with U unitary on the input.

A real input of even size n is read as n/2 complex numbers (feature i paired with i + n/2), so a unitary U
on C^(n/2) is an exactly norm-preserving map on R^n. Two modes:
- `unitary`: `StructuredUnitary`, U = D3 R2 F^-1 D2 Pi R1 F D1 with O(n) parameters, trained by the
  ordinary optimiser;
- `unitary_full`: `DenseUnitary`, a dense U trained by its own Riemannian step (`riemannian_step(lr)`)
  after backward; such modules are listed by `riemannian_modules(model)` and kept out of the optimiser.
Merge: W <- W0 U (U as the real n x n orthogonal matrix); unmerge with U^T.

With `unitary_checkpoint` (default) the structured U x is recomputed in backward (torch.utils.checkpoint),
so autograd keeps only the layer input x instead of the complex intermediates of the FFT chain (each of
the input's size, five of them per layer). The dense mode stores one complex copy of x either way,
so recomputing it would cost time for nothing: it never recomputes."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from govtune.adapters.base import AdapterLayer
from govtune.adapters.config import AdapterConfig
from govtune.adapters.unitary_ops import DenseUnitary, StructuredUnitary


class UnitaryLayer(AdapterLayer):
    method = "unitary"
    dense = False

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        if self.in_features % 2:
            raise ValueError(f"{name}: unitary adapters pair input feature i with i + n/2, so they need an even "
                             f"input size; this layer has {self.in_features}: choose other target_modules")
        op = DenseUnitary if self.dense else StructuredUnitary
        # Device only: the operators choose their own precision (DenseUnitary keeps U in float64 so that
        # its drift bound is meaningful).
        self.unitary_U = op(self.in_features).to(device=base_layer.weight.device)
        self.checkpoint = config.unitary_checkpoint and not self.dense

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            # Non-reentrant: gradients reach the parameters and x even when x does not require grad;
            # U has no randomness, so the RNG state need not be saved and restored.
            return self.base_layer(checkpoint(self.unitary_U, x, use_reentrant=False, preserve_rng_state=False))
        return self.base_layer(self.unitary_U(x))

    def _merge(self, w, b):
        return w @ self.unitary_U.matrix().float(), b

    def _unmerge(self, w, b):
        return w @ self.unitary_U.matrix().float().T, b


class UnitaryFullLayer(UnitaryLayer):
    """Dense unitary U trained on the unitary manifold by `riemannian_step`."""

    method = "unitary_full"
    dense = True
