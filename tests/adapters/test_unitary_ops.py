"""StructuredUnitary and DenseUnitary: identity at init, exact norm preservation, dense references,
the complex-gradient convention, and the Riemannian step (descent, unitarity, re-projection)."""

from __future__ import annotations

import math

import pytest
import torch

from govtune.adapters.unitary_ops import DenseUnitary, StructuredUnitary, real_form, to_complex, to_real


def _randomise(op: StructuredUnitary, seed: int = 0) -> StructuredUnitary:
    torch.manual_seed(seed)
    with torch.no_grad():
        op.phases.uniform_(-math.pi, math.pi)
        op.reflections.normal_()
    return op


def _structured_dense_reference(op: StructuredUnitary) -> torch.Tensor:
    """D3 R2 F^-1 D2 R1 F D1 as dense complex matrices, F from its definition exp(-2 pi i jk / h) / sqrt(h)."""
    h = op.half
    phases = op.phases.detach().double()
    v = torch.view_as_complex(op.reflections.detach().double().contiguous())
    j = torch.arange(h, dtype=torch.float64)
    f = torch.exp(-2j * math.pi * torch.outer(j, j) / h) / math.sqrt(h)
    d = [torch.diag(torch.exp(1j * phases[k])) for k in range(3)]
    eye = torch.eye(h, dtype=torch.complex128)
    r = [eye - 2 * torch.outer(v[k], v[k].conj()) / (v[k].abs() ** 2).sum() for k in range(2)]
    return d[2] @ r[1] @ f.conj().T @ d[1] @ r[0] @ f @ d[0]


# ---------------------------------------------------------------- complex view


def test_complex_view_pairs_feature_j_with_j_plus_half() -> None:
    x = torch.arange(6.0)
    z = to_complex(x)
    assert torch.equal(z, torch.tensor([0 + 3j, 1 + 4j, 2 + 5j], dtype=torch.complex64))
    assert torch.equal(to_real(z), x)
    u = torch.randn(3, 3, dtype=torch.complex128)
    xr = torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(real_form(u) @ xr, to_real(u @ to_complex(xr)))


# ---------------------------------------------------------------- StructuredUnitary


def test_structured_identity_at_init() -> None:
    torch.manual_seed(0)
    op = StructuredUnitary(64)
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(op(x), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(op.matrix(), torch.eye(64), rtol=0, atol=1e-6)
    v1, v2 = torch.view_as_complex(op.reflections.detach())
    assert v1.abs().min() > 0  # a random reflection, not a degenerate zero vector
    torch.testing.assert_close(v2, torch.fft.ifft(v1, norm="ortho"))


def test_structured_matches_dense_reference() -> None:
    op = _randomise(StructuredUnitary(24)).double()
    torch.testing.assert_close(op.matrix(), real_form(_structured_dense_reference(op)), rtol=1e-10, atol=1e-10)
    x = torch.randn(2, 3, 24, dtype=torch.float64)
    torch.testing.assert_close(op(x), x @ op.matrix().T, rtol=1e-10, atol=1e-10)


def test_structured_preserves_norm_exactly() -> None:
    op = _randomise(StructuredUnitary(576))
    x = torch.randn(32, 576)
    torch.testing.assert_close(op(x).norm(dim=-1), x.norm(dim=-1), rtol=1e-6, atol=0)
    m = _randomise(StructuredUnitary(32)).matrix()
    assert (m - torch.eye(32)).abs().max() > 0.1  # the random parameters are not the identity


def test_structured_stays_orthogonal_after_adam_training(single_thread) -> None:
    torch.manual_seed(0)
    n = 32
    op = StructuredUnitary(n)
    target = torch.linalg.qr(torch.randn(n, n))[0]
    x = torch.randn(64, n)
    opt = torch.optim.Adam(op.parameters(), lr=1e-2)
    first = None
    for _ in range(1000):
        loss = (op(x) - x @ target.T).square().mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first  # it learned something (a random orthogonal map is out of reach in O(n))
    m = op.matrix()
    torch.testing.assert_close(m.T @ m, torch.eye(n), rtol=0, atol=1e-5)


def test_structured_gradcheck_float64() -> None:
    op = _randomise(StructuredUnitary(8)).double()
    x = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in op.named_parameters()}

    def fn(x_in, phases, reflections):
        return torch.func.functional_call(op, {"phases": phases, "reflections": reflections}, (x_in,))

    assert torch.autograd.gradcheck(fn, (x, params["phases"], params["reflections"]))


def test_structured_low_precision_and_counts() -> None:
    op = _randomise(StructuredUnitary(64))
    x = torch.randn(4, 64)
    out = op(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), op(x), rtol=0.05, atol=0.05)
    assert op.num_parameters == 7 * 32 == sum(p.numel() for p in op.parameters())


# ---------------------------------------------------------------- DenseUnitary


def test_dense_identity_at_init_and_forward_matches_matrix() -> None:
    op = DenseUnitary(16)
    x = torch.randn(3, 4, 16)
    assert torch.equal(op(x), x)
    assert op.drift() == 0.0
    torch.manual_seed(1)
    with torch.no_grad():
        u = torch.linalg.qr(torch.randn(8, 8, dtype=torch.complex128))[0]
        op.weight.copy_(torch.view_as_real(u))
    xd = x.double()
    torch.testing.assert_close(op(xd), xd @ op.matrix().T)
    torch.testing.assert_close(op.matrix(), real_form(u))
    assert op.num_parameters == 2 * 8 * 8


def _toy_loss(op: DenseUnitary, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (op(x) - target).square().sum()


def test_gradient_convention_against_finite_differences() -> None:
    """G = view_as_complex(weight.grad) = dL/dRe U + i dL/dIm U, PyTorch's complex .grad (2 dL/d conj U):
    the directional derivative along any complex E is Re <G, E> = Re sum(conj(G) E)."""
    torch.manual_seed(0)
    op = DenseUnitary(12)
    with torch.no_grad():
        op.weight.copy_(torch.view_as_real(torch.linalg.qr(torch.randn(6, 6, dtype=torch.complex128))[0]))
    x = torch.randn(5, 12, dtype=torch.float64)
    target = torch.randn(5, 12, dtype=torch.float64)
    _toy_loss(op, x, target).backward()
    g = torch.view_as_complex(op.weight.grad)

    # The same loss on a complex leaf: PyTorch's own complex gradient is the same G.
    u_leaf = op.unitary().detach().clone().requires_grad_(True)
    out = to_real(to_complex(x) @ u_leaf.T)
    (out - target).square().sum().backward()
    torch.testing.assert_close(u_leaf.grad, g)

    eps = 1e-6
    for direction in (torch.randn(6, 6, dtype=torch.complex128), 1j * torch.randn(6, 6, dtype=torch.complex128)):
        with torch.no_grad():
            base = op.unitary().clone()
            losses = []
            for sign in (1, -1):
                op.weight.copy_(torch.view_as_real(base + sign * eps * direction))
                losses.append(_toy_loss(op, x, target).item())
            op.weight.copy_(torch.view_as_real(base))
        numeric = (losses[0] - losses[1]) / (2 * eps)
        analytic = (g.conj() * direction).sum().real.item()
        assert numeric == pytest.approx(analytic, rel=1e-6)


def _fit_target_problem(n: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    h = n // 2
    target_u = torch.linalg.qr(torch.randn(h, h, dtype=torch.complex128))[0]
    x = torch.randn(32, n, dtype=torch.float64)
    return x, x @ real_form(target_u).T


def test_riemannian_step_descends_and_papers_sign_ascends() -> None:
    x, target = _fit_target_problem()
    losses = {}
    for sign in (1.0, -1.0):  # -1: exp(+lr B), the sign printed in the papers
        op = DenseUnitary(16)
        before = _toy_loss(op, x, target)
        before.backward()
        op.riemannian_step(sign * 1e-3)
        losses[sign] = (before.item(), _toy_loss(op, x, target).item())
    assert losses[1.0][1] < losses[1.0][0]
    assert losses[-1.0][1] > losses[-1.0][0]


def test_riemannian_training_fits_target_and_stays_unitary() -> None:
    x, target = _fit_target_problem()
    op = DenseUnitary(16)
    first = _toy_loss(op, x, target).item()
    for _ in range(1000):
        loss = _toy_loss(op, x, target)
        loss.backward()
        assert op.riemannian_step(2e-3)
        assert op.weight.grad is None  # cleared for the next backward
    assert _toy_loss(op, x, target).item() < 1e-3 * first
    assert op.drift() < 1e-5
    m = op.matrix()
    torch.testing.assert_close(m.T @ m, torch.eye(16, dtype=m.dtype), rtol=0, atol=1e-5)


def test_reprojection_triggers_above_the_bound() -> None:
    x, target = _fit_target_problem()
    op = DenseUnitary(16, drift_bound=1e-6)
    _toy_loss(op, x, target).backward()
    op.riemannian_step(1e-3)
    assert op.reprojections == 0  # float64 steps stay far below 1e-6
    with torch.no_grad():
        op.weight.mul_(1.0 + 1e-4)  # forced drift, ~ 2e-4 sqrt(h)
    assert op.drift() > 1e-6
    _toy_loss(op, x, target).backward()
    op.riemannian_step(1e-3)
    assert op.reprojections == 1
    assert op.drift() < 1e-12

    loose = DenseUnitary(16, drift_bound=1e-2)
    with torch.no_grad():
        loose.weight.mul_(1.0 + 1e-4)
    _toy_loss(loose, x, target).backward()
    loose.riemannian_step(1e-3)
    assert loose.reprojections == 0


def test_step_without_gradient_is_a_no_op() -> None:
    op = DenseUnitary(8)
    before = op.weight.detach().clone()
    assert op.riemannian_step(0.1) is False
    assert torch.equal(op.weight, before)


def test_float32_storage_and_activations() -> None:
    x, target = _fit_target_problem()
    op = DenseUnitary(16, dtype=torch.float32)
    for _ in range(50):
        _toy_loss(op, x.float(), target.float()).backward()
        op.riemannian_step(2e-3)
    assert op.weight.dtype == torch.float32
    assert op.drift() < 1e-5
    assert op(x.bfloat16()).dtype == torch.bfloat16


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [StructuredUnitary, DenseUnitary])
def test_odd_or_empty_features_rejected(cls) -> None:
    for n in (7, 0):
        with pytest.raises(ValueError, match="even, positive number of features"):
            cls(n)


@pytest.mark.parametrize("cls", [StructuredUnitary, DenseUnitary])
def test_wrong_input_size_rejected(cls) -> None:
    with pytest.raises(ValueError, match="expects last dimension 16"):
        cls(16)(torch.randn(2, 8))


def test_dense_bad_options() -> None:
    with pytest.raises(ValueError, match="drift_bound must be positive"):
        DenseUnitary(8, drift_bound=0.0)
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        DenseUnitary(8, dtype=torch.complex64)
