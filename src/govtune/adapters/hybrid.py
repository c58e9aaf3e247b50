"""Hybrid LoRA-GA + BOFT with a per-layer mixing coefficient lam.

    y = y0 + lam s (B A - B0 A0) x + (1 - lam) (R y0 - y0)        merge: W0 + lam s (BA - B0A0) + (1-lam)(R-I) W0

y0 = W0 x + b is computed once; R (butterfly orthogonal) is applied to it. (A, B) start at the LoRA-GA
init (A0, B0). Unlike plain LoRA-GA the offset s B0 A0 is kept inside the branch instead of subtracted from
W0: a fixed offset lam0 s B0 A0 in W0 would make every later change of lam move the model's function by
(lam - lam0) s B0 A0, whose spectral norm is s d_out^(1/2) / gamma per unit of lam (3 for SmolLM2 q_proj),
so the adaptive rule would perturb the model by itself. Kept in the branch, the output at init is the base
output for any lam, and W0 and y0 stay those of the pretrained model (R rotates the real pretrained
output). The extra cost is a rank-2r instead of rank-r term, added to the layer's weight (d_out x d_in) where
the rotated weight is built anyway, not computed per token (see `boft.rotated_linear`).

lam is a plain float in the forward (detached by construction) and is updated after each backward by
`update_lam`: adaptive lam = gL / (gL + gB) from branch gradient norms with the mixing factor divided out
(gL / lam, gB / (1 - lam)), otherwise the factors feed back and lam runs to 0 or 1; smoothed by an EMA and
clamped to [lam_min, 1 - lam_min]. "fixed" and "anneal" are the companion paper's ablations.

"learned": lam = lam_min + (1 - 2 lam_min) sigmoid(phi), phi a per-layer scalar trained on the validation
loss only (govtune.adapters.mixer). phi has requires_grad=False, so no optimiser over the trainable
parameters holds it and the training loss cannot reach it; only inside `mixer.mixer_forward` does the
forward read lam as a differentiable function of phi."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from govtune.adapters.base import AdapterLayer
from govtune.adapters.boft import make_butterfly, rotated_linear
from govtune.adapters.config import AdapterConfig
from govtune.adapters.gradients import grad_norm
from govtune.adapters.lora_ga import GradientStart


@torch.no_grad()
def update_adaptive_lams(layers: list[HybridLayer]) -> None:
    """`update_lam` of many adaptive layers at once: every branch's gradient norm from one `_foreach_norm`
    over all their gradients, summed per branch on the device and read back in one transfer, instead of a
    few small tensor operations and a host read per layer (the per-layer path cost 2 points of a step)."""
    grads, owner = [], []  # owner: 2 i for layer i's LoRA-GA branch, 2 i + 1 for its BOFT branch
    for i, layer in enumerate(layers):
        for branch, params in enumerate((layer.lora_parameters(), layer.boft_parameters())):
            for p in params:
                if p.grad is not None:
                    grads.append(p.grad)
                    owner.append(2 * i + branch)
    present = set(owner)
    missing = next((layer for i, layer in enumerate(layers) if 2 * i not in present and 2 * i + 1 not in present),
                   None)
    if missing is not None:
        raise ValueError(missing._no_gradient())
    norms = torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float32))  # float32 as `grad_norm`, bf16 too
    squares = torch.zeros(2 * len(layers), dtype=norms.dtype, device=norms.device)
    squares.index_add_(0, torch.tensor(owner, device=norms.device), norms * norms)
    branch_norms = squares.sqrt().tolist()
    for i, layer in enumerate(layers):
        layer.set_lam(layer._adaptive_lam(branch_norms[2 * i], branch_norms[2 * i + 1]))
        layer.lam_history.append(layer._lam)


class HybridLayer(GradientStart, AdapterLayer):
    """The LoRA-GA branch (`GradientStart`: lora_A, lora_B from (lora_A0, lora_B0), W0 left as it is)
    mixed by lam with the BOFT rotation `boft_R` of y0."""

    method = "hybrid"

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__(base_layer, config, name)
        self._add_lowrank(config.r)
        self.boft_R = make_butterfly(self.out_features, config, name).to(
            device=base_layer.weight.device, dtype=self.compute_dtype)
        self.checkpoint = config.boft_checkpoint
        start = {"adaptive": config.lam_init, "fixed": config.lam_fixed, "anneal": config.lam_anneal[0],
                 "learned": config.lam_init}
        lam0 = start[config.lam_schedule]
        if config.lam_schedule == "adaptive":
            lam0 = min(max(lam0, config.lam_min), 1 - config.lam_min)
        self.register_buffer("lam", torch.tensor(float(lam0)))  # saved with the adapter
        self._lam = float(lam0)  # the forward reads this float: no autograd edge, no device sync
        self.lam_history: list[float] = []
        self.mixer_grad = False  # True only inside mixer.mixer_forward: lam is then a function of phi
        if config.lam_schedule == "learned":
            # float32 whatever the model's dtype: Adam steps of ~mixer_lr would vanish in a bf16 scalar
            self.mixer_phi = nn.Parameter(torch.zeros((), device=base_layer.weight.device), requires_grad=False)
            self.set_lam(lam0)

    # -- lam ----------------------------------------------------------------------------------------
    @property
    def lam_value(self) -> float:
        return self._lam

    @property
    def learned(self) -> bool:
        return self.config.lam_schedule == "learned"

    def lam_of_phi(self) -> torch.Tensor:
        """lam = lam_min + (1 - 2 lam_min) sigmoid(phi), as a tensor (learned schedule)."""
        m = self.config.lam_min
        # the clamp only catches rounding: m + (1 - 2m) * 1 may land one float32 step above 1 - m
        return torch.clamp(m + (1.0 - 2.0 * m) * torch.sigmoid(self.mixer_phi), m, 1.0 - m)

    @torch.no_grad()
    def set_lam(self, value: float) -> None:
        """Set lam; for the learned schedule phi moves with it (the inverse of `lam_of_phi`)."""
        if self.learned:
            m = self.config.lam_min
            u = (float(value) - m) / (1.0 - 2.0 * m)
            if not 0.0 < u < 1.0:
                raise ValueError(f"{self.name}: a learned lam must lie strictly inside (lam_min, 1 - lam_min) = "
                                 f"({m}, {1 - m}), got {value!r}")
            self.mixer_phi.fill_(math.log(u / (1.0 - u)))
            value = float(self.lam_of_phi())
        self._lam = float(value)
        self.lam.fill_(self._lam)

    @torch.no_grad()
    def sync_lam(self) -> float:
        """After phi changed (mixer step, load): lam and its float follow phi."""
        self._lam = float(self.lam_of_phi())
        self.lam.fill_(self._lam)
        return self._lam

    def lora_parameters(self) -> list[nn.Parameter]:
        return [self.lora_A, self.lora_B]

    def boft_parameters(self) -> list[nn.Parameter]:
        return list(self.boft_R.parameters())

    def update_lam(self, progress: float) -> float:
        """New lam after a backward pass; appended to `lam_history`. progress in [0, 1] (anneal only)."""
        c = self.config
        if c.lam_schedule == "learned":  # phi moves in the mixer step, from the validation loss only
            self.lam_history.append(self._lam)
            return self._lam
        if c.lam_schedule == "fixed":
            new = c.lam_fixed
        elif c.lam_schedule == "anneal":
            p = min(max(float(progress), 0.0), 1.0)
            new = c.lam_anneal[0] + (c.lam_anneal[1] - c.lam_anneal[0]) * p
        else:
            lora, boft = list(self.lora_parameters()), list(self.boft_parameters())
            if all(p.grad is None for p in (*lora, *boft)):
                raise ValueError(self._no_gradient())
            new = self._adaptive_lam(grad_norm(lora), grad_norm(boft))
        self.set_lam(new)
        self.lam_history.append(self._lam)
        return self._lam

    def _adaptive_lam(self, g_lora: float, g_boft: float) -> float:
        """The adaptive rule: lam moves (EMA) towards the LoRA-GA branch's share of the two gradient norms."""
        c, lam = self.config, self._lam
        # Divide out the mixing factors: the raw gradients are lam * gL and (1 - lam) * gB.
        g_lora /= max(lam, 1e-12)
        g_boft /= max(1.0 - lam, 1e-12)
        total = g_lora + g_boft
        raw = g_lora / total if total > 0 and math.isfinite(total) else lam
        new = c.lam_ema * lam + (1.0 - c.lam_ema) * raw
        return min(max(new, c.lam_min), 1.0 - c.lam_min)

    def _no_gradient(self) -> str:
        return (f"{self.name}: no gradients on the hybrid branches; call after_backward(model, progress) after "
                f"loss.backward() and before optimizer.zero_grad()")

    # -- forward, merge -----------------------------------------------------------------------------
    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.factors_from_start()  # B A - B0 A0 = [B, -B0] [A; A0]: one rank-2r product
        if self.mixer_grad:  # the mixer's validation forward: the same map, differentiable in phi
            lam_t = self.lam_of_phi().to(self.compute_dtype)  # lerp wants the weight's dtype
            mixed = rotated_linear(self, self.boft_R, x, self.checkpoint, lam_t)
            return mixed + (lam_t * self.scaling) * F.linear(F.linear(x, a), b)
        lam = self._lam
        # lam y0 + (1 - lam) R y0 + lam s (BA - B0A0) x as one linear map: lerp(R W0, W0, lam) + lam s b a
        return rotated_linear(self, self.boft_R, x, self.checkpoint, lam, lowrank=(a, b, lam * self.scaling))

    def _stored_lam(self) -> float:
        """lam as the adapter stores it (float32): a merge then gives the same weights whether lam came from
        training (`_lam` may carry a double's last bits) or from a saved adapter or checkpoint."""
        return float(self.lam)

    def _mix_matrix(self) -> torch.Tensor:
        """M = lam I + (1 - lam) R, so that y = M y0 + lam s (BA - B0A0) x."""
        r, lam = self.boft_R.matrix().float(), self._stored_lam()
        return lam * torch.eye(r.shape[0], dtype=r.dtype, device=r.device) + (1.0 - lam) * r

    def _merge(self, w, b):
        m = self._mix_matrix()
        return m @ w + self._stored_lam() * self.delta_from_start(), None if b is None else m @ b

    def _unmerge(self, w, b):
        m = self._mix_matrix()
        w0 = torch.linalg.solve(m, w - self._stored_lam() * self.delta_from_start())
        return w0, None if b is None else torch.linalg.solve(m, b)

    @torch.no_grad()
    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        super().load_adapter_state_dict(state)
        self._lam = float(self.lam)

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # a plain model.load_state_dict keeps lam in sync
        super()._load_from_state_dict(*args, **kwargs)
        self._lam = float(self.lam)
