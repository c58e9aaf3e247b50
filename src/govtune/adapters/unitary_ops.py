"""Unitary maps on real features (uRNN, Arjovsky et al. 2016), exactly norm-preserving.

A real vector x of even size n is read as the complex vector z = x[:h] + i x[h:] of size h = n/2
(feature j paired with j + h). A unitary U on C^h then acts on R^n as the orthogonal matrix
[[Re U, -Im U], [Im U, Re U]], which is what `matrix()` returns.

- `StructuredUnitary`: U = D3 R2 F^-1 D2 Pi R1 F D1 with O(n) parameters, O(n log n) per vector.
- `DenseUnitary`: a full U trained by the Riemannian step B = G U^H - U G^H, U <- exp(-lr B) U.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_even(features: int, name: str) -> int:
    if features <= 0 or features % 2:
        raise ValueError(
            f"{name} needs an even, positive number of features (feature j is paired with j + n/2 as one "
            f"complex number), got {features}: use an even size, or leave this layer out of the target modules"
        )
    return features // 2


def _check_input(x: torch.Tensor, features: int, name: str) -> None:
    if x.shape[-1] != features:
        raise ValueError(
            f"{name} expects last dimension {features}, got shape {tuple(x.shape)}: build it with features "
            "equal to the size of the dimension it acts on"
        )


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # torch.fft and complex matmul have no half-precision CPU kernels; float32 keeps |Ux| = |x| to 1e-7.
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """(..., n) real -> (..., n/2) complex, feature j paired with j + n/2."""
    h = x.shape[-1] // 2
    return torch.complex(x[..., :h], x[..., h:])


def to_real(z: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_complex`: (..., h) complex -> (..., 2h) real."""
    return torch.cat([z.real, z.imag], dim=-1)


def real_form(u: torch.Tensor) -> torch.Tensor:
    """Real (2h x 2h) matrix of z -> U z in the paired layout: [[Re U, -Im U], [Im U, Re U]]."""
    return torch.cat([torch.cat([u.real, -u.imag], 1), torch.cat([u.imag, u.real], 1)], 0)


def _householder(z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(I - 2 v v^H / |v|^2) z for rows z (..., h): O(h) per row.

    torch.linalg.householder_product would build the dense h x h matrix, O(h^2) per row.
    """
    # A tiny floor only matters if v collapses to 0, where the reflection is undefined anyway.
    scale = 2.0 / v.abs().square().sum().clamp_min(torch.finfo(v.real.dtype).tiny)
    return z - (scale * (z @ v.conj())).unsqueeze(-1) * v


class StructuredUnitary(nn.Module):
    """U = D3 R2 F^-1 D2 Pi R1 F D1 on C^(n/2); `forward(x)` applies U to each row of x (..., n).

    Trainable (all real, so any optimiser, dtype cast and safetensors file handles them):
    `phases` (3, h): D_k = diag(exp(i phases[k-1])); `reflections` (2, h, 2): complex vectors v1, v2
    (last dim = real, imaginary) of R_k = I - 2 v_k v_k^H / |v_k|^2. 3h + 4h = 3.5 n parameters.

    Identity at init, exactly and at no extra cost: Pi is the identity, the phases are 0, v1 is random
    and v2 = F^-1 v1. Then F^-1 R1 F is the reflection along F^-1 v1 = v2, so U = R2 R2 = I. The
    alternative, a random Pi with the relative form U(theta) U(theta0)^H, would double the cost of
    every application (U(theta0)^H is another D R F Pi chain), and no choice of phases makes a
    non-identity Pi give U = I in this product; the learned D2 and reflections still mix the Fourier
    modes, and v1, v2 train independently from the first step.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.half = h = _check_even(features, "StructuredUnitary")
        self.phases = nn.Parameter(torch.zeros(3, h))
        v1 = torch.randn(h, dtype=torch.complex64) / math.sqrt(h)
        v2 = torch.fft.ifft(v1, norm="ortho")
        self.reflections = nn.Parameter(torch.stack([torch.view_as_real(v1), torch.view_as_real(v2)]))

    @property
    def num_parameters(self) -> int:
        return self.phases.numel() + self.reflections.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.features, "StructuredUnitary")
        dtype = _compute_dtype(x.dtype)
        z = to_complex(x.to(dtype))  # (..., h)
        phases = self.phases.to(dtype)
        v = torch.view_as_complex(self.reflections.to(dtype).contiguous())  # (2, h)
        d = torch.polar(torch.ones_like(phases), phases)  # (3, h) unit-modulus diagonals
        z = z * d[0]
        z = torch.fft.fft(z, norm="ortho")
        z = _householder(z, v[0])
        # Pi = identity (see the class docstring).
        z = z * d[1]
        z = torch.fft.ifft(z, norm="ortho")
        z = _householder(z, v[1])
        z = z * d[2]
        return to_real(z).to(x.dtype)

    def matrix(self) -> torch.Tensor:
        """Real (n x n) orthogonal matrix of U, built by applying U to the identity (float32 or float64)."""
        eye = torch.eye(self.features, dtype=_compute_dtype(self.phases.dtype), device=self.phases.device)
        return self.forward(eye).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"features={self.features}"


class DenseUnitary(nn.Module):
    """A dense unitary U on C^(n/2) trained on the manifold by `riemannian_step`, not by an optimiser.

    `weight` (h, h, 2) holds U as (real, imaginary) parts: safetensors and `Module.to(dtype)` do not
    handle complex tensors, and the real view's gradient is exactly PyTorch's complex gradient
    dL/dRe U + i dL/dIm U (twice the conjugate Wirtinger derivative), i.e. the Euclidean gradient G of
    the Riemannian step. It is kept in float64 by default: the drift bound of 1e-6 on ||U^H U - I||_F is
    below the float32 rounding floor of that norm once h exceeds about ten.
    """

    def __init__(self, features: int, drift_bound: float = 1e-6, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if drift_bound <= 0:
            raise ValueError(f"drift_bound must be positive, got {drift_bound}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64 (real storage of U), got {dtype}")
        self.features = features
        self.half = h = _check_even(features, "DenseUnitary")
        self.drift_bound = drift_bound
        self.reprojections = 0
        self.weight = nn.Parameter(torch.view_as_real(torch.eye(h, dtype=torch.complex128)).to(dtype).contiguous())

    @property
    def num_parameters(self) -> int:
        """Stored real entries, 2 h^2 (the unitary group itself has h^2 real dimensions)."""
        return self.weight.numel()

    def unitary(self) -> torch.Tensor:
        """U as a complex (h, h) tensor, differentiable w.r.t. `weight`."""
        return torch.view_as_complex(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.features, "DenseUnitary")
        dtype = _compute_dtype(x.dtype)
        u = torch.view_as_complex(self.weight.to(dtype))  # (h, h)
        z = to_complex(x.to(dtype))  # (..., h)
        return to_real(z @ u.transpose(0, 1)).to(x.dtype)  # rows: U z

    def matrix(self) -> torch.Tensor:
        return real_form(self.unitary().detach())

    @torch.no_grad()
    def drift(self) -> float:
        """||U^H U - I||_F, computed in float64."""
        u = self.unitary().to(torch.complex128)
        eye = torch.eye(self.half, dtype=u.dtype, device=u.device)
        return torch.linalg.matrix_norm(u.conj().transpose(0, 1) @ u - eye).item()

    def _effective_bound(self) -> float:
        # If the host model cast `weight` to float32 (or lower), ||U^H U - I||_F of a perfectly
        # re-projected U is ~h * eps; below that, re-projection would run every step and change nothing.
        eps = torch.finfo(self.weight.dtype).eps
        return max(self.drift_bound, 8.0 * self.half * eps)

    @torch.no_grad()
    def reproject(self) -> None:
        """Nearest unitary matrix (polar factor W V^H of U = W S V^H)."""
        u = self.unitary().to(torch.complex128)
        w, _, vh = torch.linalg.svd(u)
        self.weight.copy_(torch.view_as_real(w @ vh).to(self.weight.dtype))
        self.reprojections += 1

    @torch.no_grad()
    def riemannian_step(self, lr: float) -> bool:
        """One descent step on the unitary group from `weight.grad`, then clear the grad.

        B = G U^H - U G^H is skew-Hermitian, so exp(-lr B) is unitary; to first order the loss
        changes by -lr ||B||_F^2 / 2 (the papers print exp(+lr B), an ascent step). Computed in
        complex128. Returns False, doing nothing, when the module got no gradient (unused in the
        forward pass); re-projects when the drift exceeds the bound.
        """
        grad = self.weight.grad
        if grad is None:
            return False
        g = torch.view_as_complex(grad.to(torch.float64).contiguous())
        u = self.unitary().to(torch.complex128)
        a = g @ u.conj().transpose(0, 1)
        b = a - a.conj().transpose(0, 1)
        u = torch.linalg.matrix_exp(-lr * b) @ u
        self.weight.copy_(torch.view_as_real(u).to(self.weight.dtype))
        self.weight.grad = None
        if self.drift() > self._effective_bound():
            self.reproject()
        return True

    def extra_repr(self) -> str:
        return f"features={self.features}, drift_bound={self.drift_bound}"
