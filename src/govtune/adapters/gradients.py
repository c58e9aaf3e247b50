"""The gradient norm every part of govtune reads: the hybrid's adaptive lam (per branch), the training
loop's log and divergence check, the Trainer callback's branch norms. One function, so all of them agree."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def grad_norm(params: Iterable[nn.Parameter]) -> float:
    """L2 norm of the gradients present on `params` (parameters without a gradient count for nothing; 0.0
    when none has one), accumulated in float32 whatever the gradients' dtype (bf16 and fp16 too)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
