"""LoRA (Hu et al., 2021): y = y0 + s B A x, s = alpha / r; merge W0 + s B A.

`LowRankBranch` holds the pair (A, B) and its maths for every method with a LoRA branch: LoRA, LoRA-GA
(`lora_ga.GradientStart`) and the hybrid."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from govtune.adapters.base import AdapterLayer
from govtune.adapters.config import AdapterConfig


def add_lowrank(y: torch.Tensor, ax: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """y + scale * ax B^T as one addmm: the scaled product is added inside the GEMM, saving the separate
    multiply and add passes over the (tokens x d_out) output that `y + B(A x) * s` costs (forward and
    backward). Numerically equal to PEFT's form up to float rounding."""
    lead = y.shape[:-1]
    out = torch.addmm(y.reshape(-1, y.shape[-1]), ax.reshape(-1, ax.shape[-1]), b.t(), alpha=scale)
    return out.view(*lead, y.shape[-1])


class LowRankBranch:
    """Mixin for an AdapterLayer: the trainable pair A (r, d_in), B (d_out, r) under PEFT's names, so that
    state_dict keys read `lora_A`, `lora_B` in every method that has the branch."""

    r: int
    lora_A: nn.Parameter
    lora_B: nn.Parameter

    def _add_lowrank(self, r: int) -> None:
        self.r = r
        self.lora_A = nn.Parameter(self._param_like(r, self.in_features))  # (r, d_in)
        self.lora_B = nn.Parameter(self._param_like(self.out_features, r))  # (d_out, r)
        # PEFT's default init, so that both libraries start from the same distribution: B = 0 makes the
        # adapter the identity at init.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        """s B A, (d_out, d_in), float32."""
        return self.scaling * (self.lora_B.float() @ self.lora_A.float())


class LoraLayer(LowRankBranch, AdapterLayer):
    method = "lora"

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        self._add_lowrank(config.r)

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.base_layer(x)  # (..., d_out)
        ax = F.linear(x, self.lora_A)  # (..., r)
        return add_lowrank(y0, ax, self.lora_B, self.scaling)

    def _merge(self, w, b):
        return w + self.delta_weight(), b

    def _unmerge(self, w, b):
        return w - self.delta_weight(), b
