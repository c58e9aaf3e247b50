"""Butterfly orthogonal operator of BOFT (Liu et al., ICLR 2024), applied without dense d x d matrices.

R = N_0 N_1 ... N_{m-1},   N_i = P_i BD_i P_i^T

BD_i is block diagonal with d/b orthogonal b x b blocks, each the exact Cayley transform
(I + Q)(I - Q)^-1 of Q = (X - X^T)/2, and P_i is the i-th butterfly permutation of PEFT's BOFT
(`block_butterfly_perm`): inside groups of b * 2^i features, the half-blocks of size b/2 are reordered
evens-first, so block k of factor i mixes half-blocks that factor i-1 kept apart. P_0 = I.

The factor order and permutations are PEFT's, and the Cayley sign is the one the spec writes, so that
with the same skew parameters X, `matrix()` equals the transpose of PEFT's dense `butterfly_oft_mat`
(PEFT computes (I - Q)(I + Q)^-1 = our block transposed) and `forward(x)` equals PEFT's
`x @ butterfly_oft_mat`. Unlike PEFT, every factor is applied on every device: R z for a (d, k) matrix z
costs m gathers and m batched b x b products, O(m d b) per column, with no dense d x d matrix.

Where R is applied: `left_multiply(z)` computes R z for any (d, k) matrix. The BOFT and hybrid layers
call it on the frozen weight, k = d_in, and run the layer as x (R W0)^T + R b
(`govtune.adapters.boft.rotated_linear`): the cost is per layer, not per token. `forward(y)` applies R to
activations (y @ R^T along the last dimension) for `matrix()`, tests and benchmarks.

Factor i only mixes features inside groups of b * 2^i, so R itself is block diagonal with groups of
G = b * 2^(m-1) features. When G is small (<= DENSE_GROUP_MAX; 32 for the default b = 8, m = 3),
`left_multiply` builds those d/G dense G x G blocks from the butterfly (applied to a stacked identity:
O(m d G b), independent of k) and multiplies z by them in ONE batched product: no gathers and one saved
operand, faster on a CPU than m gathers and m products of tiny b x b blocks (measured in
bench/results/butterfly_kernel.md). For larger G the m butterfly factors are applied to z directly.

PyTorch has no block-diagonal or butterfly product (torch.block_diag builds a dense matrix), so the gathers
and block products are written here.
"""

from __future__ import annotations

import torch
from torch import nn

# Largest group of R applied as dense G x G blocks. Measured on a CPU (z with 512 columns, forward + backward),
# the dense groups beat the m butterfly factors for every G up to 256 tried (b 2..32, m 1..8).
DENSE_GROUP_MAX = 256


def butterfly_permutation(features: int, block_size: int, level: int) -> torch.Tensor:
    """Indices `idx` of butterfly permutation P_level: (P x)[j] = x[idx[j]] (PEFT's block_butterfly_perm).

    Within each group of block_size * 2**level features, half-blocks of size block_size // 2 are
    listed evens first, then odds. Level 0 is the identity.
    """
    if level == 0:
        return torch.arange(features)
    half = block_size // 2
    group = block_size * 2**level
    n_half = group // half  # 2**(level + 1) half-blocks per group
    order = torch.cat([torch.arange(0, n_half, 2), torch.arange(1, n_half, 2)])
    within = (order[:, None] * half + torch.arange(half)[None, :]).reshape(-1)  # (group,)
    starts = torch.arange(0, features, group)[:, None]
    return (starts + within[None, :]).reshape(-1)


def cayley(skew_params: torch.Tensor) -> torch.Tensor:
    """Exact Cayley transform of a batch (..., b, b): (I + Q)(I - Q)^-1 with Q = (X - X^T) / 2.

    Q is skew-symmetric, so I - Q is always invertible and the result is exactly orthogonal.
    (I + Q) and (I - Q)^-1 commute, so the product is one batched solve (I - Q) R = (I + Q).
    """
    q = 0.5 * (skew_params - skew_params.transpose(-1, -2))
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
    return torch.linalg.solve(eye - q, eye + q)


class _PermuteRows(torch.autograd.Function):
    """x[idx] (rows) whose backward is a gather by the inverse permutation, not a scatter-add.

    autograd's index_select backward is index_add (a scatter, with atomics on GPU); for a
    permutation the exact adjoint is another gather, which is faster and deterministic.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, idx: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(idx, inv)
        return x.index_select(0, idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        idx, inv = ctx.saved_tensors
        return _PermuteRows.apply(grad, inv, idx), None, None


def _inverse(idx: torch.Tensor) -> torch.Tensor:
    inv = torch.empty_like(idx)
    inv[idx] = torch.arange(idx.numel())
    return inv


class ButterflyOrthogonal(nn.Module):
    """Orthogonal R of BOFT with m butterfly factors; `forward(y)` returns y @ R^T (R y per row).

    Trainable: `skew` of shape (n_factors, n_blocks, block_size, block_size), the X of
    Q = (X - X^T) / 2 for every block of every factor (PEFT's `boft_R` layout). Zeros at init, so R = I.
    """

    def __init__(self, features: int, n_factors: int = 3, block_size: int = 8) -> None:
        super().__init__()
        _validate(features, n_factors, block_size)
        self.features = features
        self.n_factors = n_factors
        self.block_size = block_size
        self.n_blocks = features // block_size
        self.group_size = block_size * 2 ** (n_factors - 1)  # R is block diagonal with blocks this size
        self.dense_groups = self.group_size <= DENSE_GROUP_MAX
        self.skew = nn.Parameter(torch.zeros(n_factors, self.n_blocks, block_size, block_size))

        # R y = P_0 BD_0 P_0^T P_1 BD_1 P_1^T ... P_{m-1} BD_{m-1} P_{m-1}^T y: applied right to left,
        # factor m-1 first. Between two block products sits P_i^T P_{i+1}, fused into one gather
        # (x[idx_{i+1}])[inv_i] = x[idx_{i+1}[inv_i]]; gathers that are the identity are skipped.
        perms = [butterfly_permutation(features, block_size, i) for i in range(n_factors)]
        invs = [_inverse(p) for p in perms]
        gathers = [invs[-1]]  # before the first block product: P_{m-1}^T
        for i in range(n_factors - 2, -1, -1):
            gathers.append(perms[i + 1][invs[i]])
        gathers.append(perms[0])  # after the last block product: P_0 (= identity)
        self._gather_is_identity = [bool(torch.equal(g, torch.arange(features))) for g in gathers]
        for j, g in enumerate(gathers):
            self.register_buffer(f"gather_{j}", g, persistent=False)
            self.register_buffer(f"gather_inv_{j}", _inverse(g), persistent=False)

    @property
    def num_parameters(self) -> int:
        """Entries the optimiser updates (the stored X, b*b per block, PEFT's count too)."""
        return self.skew.numel()

    @property
    def num_free_parameters(self) -> int:
        """Degrees of freedom: a skew b x b block has b(b-1)/2 (X's symmetric part does not act)."""
        b = self.block_size
        return self.n_factors * self.n_blocks * b * (b - 1) // 2

    def blocks(self) -> torch.Tensor:
        """Orthogonal blocks (n_factors, n_blocks, b, b), computed in at least float32.

        linalg.solve has no half-precision kernels, and the Cayley map of small blocks is where
        low precision would cost orthogonality, so the solve runs in float32 for bf16/fp16 params.
        """
        x = self.skew
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return cayley(x)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """R y along the last dimension of y (any leading shape): for `matrix()`, tests and benchmarks. The
        adapter layers never rotate activations; they rotate the weight (`left_multiply`)."""
        if y.shape[-1] != self.features:
            raise ValueError(
                f"ButterflyOrthogonal expects last dimension {self.features}, got shape {tuple(y.shape)}: "
                "build it with features equal to the size of the dimension it rotates"
            )
        lead = y.shape[:-1]
        d = self.features
        # Work on the transposed (d, n) layout: a feature gather is then a copy of whole rows, and a
        # block product is one bmm (k, b, b) @ (k, b, n) with no transposes between factors.
        z = self.left_multiply(y.reshape(-1, d).transpose(0, 1))  # (d, n)
        # Back to row-major (one copy of (n, d)): the caller gets y's layout, not a transposed view.
        return z.transpose(0, 1).contiguous().view(*lead, d)

    def left_multiply(self, z: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """R z for z of shape (d, k): in the BOFT and hybrid layers the frozen weight (d_out, d_in) or bias
        (d_out, 1); from `forward`, activations in the (d, tokens) layout.

        groups: R's diagonal blocks from `group_blocks()`, when the caller has them already (to apply the
        same R twice without building it twice)."""
        d, k = z.shape
        if groups is None and self.dense_groups:
            groups = self.group_blocks()
        if groups is not None:
            g = self.group_size
            return torch.bmm(groups.to(z.dtype), z.reshape(d // g, g, k)).view(d, k)
        return self._butterfly(z, self.blocks().to(z.dtype))

    def group_blocks(self) -> torch.Tensor:
        """The diagonal blocks of R, (d / G, G, G) with G = `group_size`, in at least float32.

        R applied to G columns that stack d / G identities gives every block at once:
        (R E)[gG:(g+1)G] = R_g for E = [I_G; I_G; ...]. With one factor the blocks are the Cayley blocks.
        """
        blocks = self.blocks()
        if self.n_factors == 1:
            return blocks[0]
        g = self.group_size
        stacked = torch.eye(g, dtype=blocks.dtype, device=blocks.device).repeat(self.features // g, 1)
        return self._butterfly(stacked, blocks).view(self.features // g, g, g)

    def _butterfly(self, z: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """R z for z of shape (d, n): the m permuted block-diagonal factors, gathers fused; (d, n) out."""
        d, k, b = self.features, self.n_blocks, self.block_size
        n = z.shape[1]
        for step, factor in enumerate(range(self.n_factors - 1, -1, -1)):
            if not self._gather_is_identity[step]:
                idx, inv = getattr(self, f"gather_{step}"), getattr(self, f"gather_inv_{step}")
                z = _PermuteRows.apply(z, idx, inv)  # (d, n), contiguous
            z = torch.bmm(blocks[factor], z.reshape(k, b, n)).view(d, n)
        if not self._gather_is_identity[self.n_factors]:
            j = self.n_factors
            z = _PermuteRows.apply(z, getattr(self, f"gather_{j}"), getattr(self, f"gather_inv_{j}"))
        return z

    def matrix(self) -> torch.Tensor:
        """Dense R (d x d) for merging and tests; never used in the training step.

        Float32 for half-precision parameters (float64 stays float64): a merge should not inherit
        bf16 rounding of R on top of the weights' own.
        """
        dtype = torch.float64 if self.skew.dtype == torch.float64 else torch.float32
        eye = torch.eye(self.features, dtype=dtype, device=self.skew.device)
        return self.forward(eye).transpose(0, 1)  # forward(I) = I @ R^T

    def extra_repr(self) -> str:
        return f"features={self.features}, n_factors={self.n_factors}, block_size={self.block_size}"


def _validate(features: int, n_factors: int, block_size: int) -> None:
    if features <= 0:
        raise ValueError(f"features must be positive, got {features}")
    if n_factors < 1:
        raise ValueError(f"n_factors must be >= 1 (1 = block-diagonal OFT), got {n_factors}")
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 (a 1 x 1 skew block is 0, so R = I), got {block_size}")
    if features % block_size:
        raise ValueError(
            f"features ({features}) is not divisible by block_size ({block_size}): "
            f"choose a block_size that divides {features}"
        )
    if n_factors > 1:
        if block_size % 2:
            raise ValueError(
                f"block_size ({block_size}) must be even when n_factors > 1 (butterfly permutations move "
                "half-blocks): use an even block_size or n_factors=1"
            )
        n_blocks = features // block_size
        need = 2 ** (n_factors - 1)
        if n_blocks % need:
            max_m = 1
            while n_blocks % (2**max_m) == 0:
                max_m += 1
            raise ValueError(
                f"n_factors={n_factors} needs the number of blocks (features / block_size = {features} / "
                f"{block_size} = {n_blocks}) to be divisible by 2^(n_factors-1) = {need}: use n_factors <= "
                f"{max_m}, or a block_size for which {features} / block_size is a multiple of {need}"
            )
