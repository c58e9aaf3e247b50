"""ButterflyOrthogonal: orthogonality, identity at init, and equality with independent dense references."""

from __future__ import annotations

import warnings

import pytest
import torch

from govtune.adapters.butterfly import DENSE_GROUP_MAX, ButterflyOrthogonal, butterfly_permutation


def _random(features: int, n_factors: int, block_size: int, dtype=torch.float32, seed: int = 0, std: float = 0.5):
    torch.manual_seed(seed)
    op = ButterflyOrthogonal(features, n_factors, block_size).to(dtype)
    with torch.no_grad():
        op.skew.normal_(0.0, std)
    return op


def _cayley_reference(x: torch.Tensor) -> torch.Tensor:
    """(I + Q) (I - Q)^-1 with an explicit inverse, one block at a time."""
    q = 0.5 * (x - x.T)
    eye = torch.eye(x.shape[0], dtype=x.dtype)
    return (eye + q) @ torch.linalg.inv(eye - q)


def _butterfly_perm_reference(features: int, block_size: int, level: int) -> list[int]:
    """Written from the definition: per group of b * 2^level features, half-blocks evens first, then odds."""
    if level == 0:
        return list(range(features))
    half, group = block_size // 2, block_size * 2**level
    out: list[int] = []
    for start in range(0, features, group):
        chunks = [list(range(start + c * half, start + (c + 1) * half)) for c in range(group // half)]
        for c in chunks[0::2] + chunks[1::2]:
            out.extend(c)
    return out


def _dense_reference(op: ButterflyOrthogonal) -> torch.Tensor:
    """R = N_0 N_1 ... N_{m-1}, N_i = P_i blockdiag(Cayley blocks of factor i) P_i^T, all dense."""
    d = op.features
    skew = op.skew.detach()
    r = torch.eye(d, dtype=skew.dtype)
    for i in range(op.n_factors):
        bd = torch.block_diag(*[_cayley_reference(skew[i, k]) for k in range(op.n_blocks)])
        p = torch.zeros(d, d, dtype=skew.dtype)
        for row, col in enumerate(_butterfly_perm_reference(d, op.block_size, i)):
            p[row, col] = 1.0  # (P x)[row] = x[col]
        r = r @ (p @ bd @ p.T)
    return r


def _peft_dense(op: ButterflyOrthogonal) -> torch.Tensor:
    """PEFT's own dense BOFT rotation for the same skew parameters (its get_delta_weight path)."""
    layer = pytest.importorskip("peft.tuners.boft.layer")
    helpers = layer.BOFTLayer  # the helpers below do not use `self`
    m, k, b, d = op.n_factors, op.n_blocks, op.block_size, op.features
    perms = [helpers.block_butterfly_perm(None, d, k // 2**i, b // 2, m - 1) for i in range(m)]
    p = torch.stack([helpers.perm2mat(None, perm) for perm in perms]).to(op.skew.dtype)
    blocks = helpers.cayley_batch(None, op.skew.detach().reshape(m * k, b, b)).view(m, k, b, b)
    bd = torch.stack([torch.block_diag(*blocks[i]) for i in range(m)])
    mats = torch.bmm(p, torch.bmm(bd, p.transpose(1, 2)))
    r = mats[0]
    for i in range(1, m):
        r = mats[i] @ r
    return r


@pytest.mark.parametrize("n_factors", [1, 2, 3])
def test_orthogonal_with_random_parameters(n_factors: int) -> None:
    op = _random(64, n_factors, 8)
    r = op.matrix()
    eye = torch.eye(64)
    assert torch.allclose(r.T @ r, eye, atol=1e-5)
    assert torch.allclose(r @ r.T, eye, atol=1e-5)
    assert (r - eye).abs().max() > 0.1  # the random parameters really rotate
    x = torch.randn(10, 64)
    assert torch.allclose(op(x).norm(dim=-1), x.norm(dim=-1), rtol=1e-5)


@pytest.mark.parametrize("n_factors", [1, 3])
def test_identity_at_init(n_factors: int) -> None:
    op = ButterflyOrthogonal(576, n_factors, 8)
    x = torch.randn(2, 5, 576)
    assert torch.equal(op(x), x)  # Cayley(0) = I exactly, so the map is exactly the identity
    assert torch.equal(op.matrix(), torch.eye(576))


@pytest.mark.parametrize("n_factors", [1, 2, 3])
def test_forward_equals_dense_matrix(n_factors: int) -> None:
    op = _random(48, n_factors, 4, dtype=torch.float64)
    y = torch.randn(3, 7, 48, dtype=torch.float64)
    out = op(y)
    assert out.shape == y.shape
    torch.testing.assert_close(out, y @ op.matrix().T, rtol=1e-12, atol=1e-12)
    # Row-major like any linear layer's output: a strided one would send attention to its math path.
    assert out.is_contiguous()


def test_single_factor_equals_block_diagonal_cayley() -> None:
    op = _random(40, 1, 8, dtype=torch.float64)
    dense = torch.block_diag(*[_cayley_reference(op.skew.detach()[0, k]) for k in range(op.n_blocks)])
    torch.testing.assert_close(op.matrix(), dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("features", "n_factors", "block_size"), [(64, 3, 8), (96, 2, 4), (64, 4, 4), (32, 3, 2)])
def test_multi_factor_equals_product_of_dense_factors(features: int, n_factors: int, block_size: int) -> None:
    op = _random(features, n_factors, block_size, dtype=torch.float64)
    torch.testing.assert_close(op.matrix(), _dense_reference(op), rtol=1e-12, atol=1e-12)


def test_all_factors_are_used() -> None:
    """m = 3 couples features across 4 blocks (groups of b * 2^(m-1)); m = 1 never leaves a block."""
    b = 8
    for n_factors, width in [(1, b), (2, 2 * b), (3, 4 * b)]:
        support = _random(128, n_factors, b).matrix().abs() > 1e-6
        groups = torch.arange(128) // width
        assert not support[groups[:, None] != groups[None, :]].any()  # nothing outside a group
        assert support[groups[:, None] == groups[None, :]].float().mean() > 0.9  # a group is dense


def test_permutation_matches_peft() -> None:
    layer = pytest.importorskip("peft.tuners.boft.layer")
    for features, block_size, n_factors in [(64, 8, 3), (576, 8, 3), (96, 4, 4), (32, 2, 2)]:
        n_blocks = features // block_size
        for i in range(n_factors):
            ours = butterfly_permutation(features, block_size, i)
            theirs = layer.BOFTLayer.block_butterfly_perm(
                None, features, n_blocks // 2**i, block_size // 2, n_factors - 1
            )
            assert torch.equal(ours, theirs)
            assert ours.tolist() == _butterfly_perm_reference(features, block_size, i)


@pytest.mark.parametrize("n_factors", [1, 2, 3])
def test_matches_peft_dense_rotation(n_factors: int) -> None:
    """PEFT's Cayley is (I - Q)(I + Q)^-1 = our block transposed, so our R is PEFT's R transposed and
    forward(x) equals PEFT's x @ R_peft with the same parameters."""
    op = _random(64, n_factors, 8, dtype=torch.float64)
    r_peft = _peft_dense(op)
    torch.testing.assert_close(op.matrix(), r_peft.T, rtol=1e-12, atol=1e-12)
    x = torch.randn(5, 64, dtype=torch.float64)
    torch.testing.assert_close(op(x), x @ r_peft, rtol=1e-12, atol=1e-12)


def test_matches_peft_boft_layer_forward() -> None:
    """PEFT's BOFT Linear (m = 1, which is what it runs on CPU) rotates its input by our forward."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("lin", torch.nn.Linear(32, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT warns that its CUDA kernel is unavailable
        model = peft.get_peft_model(
            base, peft.BOFTConfig(target_modules=["lin"], boft_block_size=8, boft_n_butterfly_factor=1)
        )
    peft_layer = model.base_model.model.lin
    op = _random(32, 1, 8)
    with torch.no_grad():
        peft_layer.boft_R["default"].copy_(op.skew)
    x = torch.randn(4, 32)
    expected = peft_layer.base_layer(op(x))
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("features", "n_factors", "block_size"), [(64, 3, 8), (48, 2, 4), (40, 1, 8), (1024, 7, 8)])
def test_dense_groups_equal_butterfly_on_activations(features: int, n_factors: int, block_size: int) -> None:
    """The two ways of applying R (dense G x G groups, or m gathers and block products on the activations)
    give the same outputs and gradients; which one runs depends on the group size G = b 2^(m-1)."""
    op = _random(features, n_factors, block_size, dtype=torch.float64, std=0.3)
    assert op.group_size == block_size * 2 ** (n_factors - 1)
    assert op.dense_groups == (op.group_size <= DENSE_GROUP_MAX)
    y = torch.randn(3, 5, features, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 5, features, dtype=torch.float64)
    results = []
    for dense in (True, False):
        op.dense_groups = dense
        op.skew.grad, y.grad = None, None
        out = op(y)
        out.backward(g)
        results.append((out.detach(), y.grad, op.skew.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(results[0][0], y.detach() @ _dense_reference(op).T, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dense_groups", [True, False])
@pytest.mark.parametrize(("features", "n_factors", "block_size", "fast"), [(8, 2, 4, False), (16, 3, 4, True)])
def test_gradcheck_float64(features: int, n_factors: int, block_size: int, fast: bool, dense_groups: bool) -> None:
    """Exact Jacobians on a small instance; fast mode (random projections) on the m = 3 one; both paths."""
    op = _random(features, n_factors, block_size, dtype=torch.float64, std=0.3)
    op.dense_groups = dense_groups
    y = torch.randn(2, features, dtype=torch.float64, requires_grad=True)
    skew = op.skew.detach().clone().requires_grad_(True)

    def fn(y_in: torch.Tensor, skew_in: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(op, {"skew": skew_in}, (y_in,))

    assert torch.autograd.gradcheck(fn, (y, skew), fast_mode=fast)
    assert torch.autograd.gradgradcheck(fn, (y, skew), fast_mode=True)


def test_every_factor_gets_gradient_at_identity() -> None:
    op = ButterflyOrthogonal(64, 3, 8)
    y = torch.randn(8, 64)
    target = torch.randn(8, 64)
    (op(y) - target).square().sum().backward()
    per_factor = op.skew.grad.flatten(1).norm(dim=1)
    assert (per_factor > 1e-3).all()
    # Only the skew part of X acts: its gradient is antisymmetric within each block.
    g = op.skew.grad
    torch.testing.assert_close(g, -g.transpose(-1, -2))


def test_low_precision_activations_and_parameters() -> None:
    op = _random(64, 3, 8)
    x = torch.randn(4, 64)
    out = op(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), op(x), rtol=0.05, atol=0.05)
    # bf16 parameters (a module cast with its bf16 host): the Cayley solve and matrix() stay float32.
    half = ButterflyOrthogonal(64, 3, 8).bfloat16()
    with torch.no_grad():
        half.skew.copy_(op.skew)
    r = half.matrix()
    assert r.dtype == torch.float32
    torch.testing.assert_close(r.T @ r, torch.eye(64), rtol=0, atol=1e-5)
    assert half(x.bfloat16()).dtype == torch.bfloat16


def test_parameter_counts() -> None:
    op = ButterflyOrthogonal(576, 3, 8)
    assert op.skew.shape == (3, 72, 8, 8)
    assert op.num_parameters == sum(p.numel() for p in op.parameters() if p.requires_grad) == 3 * 72 * 64
    assert op.num_free_parameters == 3 * 72 * 28


@pytest.mark.parametrize(
    ("features", "n_factors", "block_size", "match"),
    [
        (100, 1, 8, "not divisible by block_size"),
        (80, 4, 8, r"divisible by 2\^\(n_factors-1\) = 8: use n_factors <= 2"),
        (48, 2, 3, "must be even when n_factors > 1"),
        (64, 0, 8, "n_factors must be >= 1"),
        (64, 1, 1, "block_size must be >= 2"),
    ],
)
def test_bad_configuration(features: int, n_factors: int, block_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ButterflyOrthogonal(features, n_factors, block_size)


def test_wrong_input_size() -> None:
    with pytest.raises(ValueError, match="expects last dimension 64"):
        ButterflyOrthogonal(64, 2, 8)(torch.randn(3, 32))
