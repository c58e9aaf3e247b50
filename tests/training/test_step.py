"""The step protocol both training loops share: one gradient norm, and the order lam -> norms -> clipping ->
Riemannian step (lam reads the gradients before clipping; the unitary_full parameters are never clipped).
That govtune's loop and the Trainer callback follow it step for step is tests/integrations/
test_trainer_callback.py (same weights, lam, phi and gradient norms after 20 steps)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from govtune.adapters import AdapterConfig, after_backward, grad_norm, inject, mixing
from govtune.models import tiny_model
from govtune.training.step import StepProtocol


def test_grad_norm_is_the_norm_of_every_present_gradient_in_float32():
    a, b, none = nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(4, dtype=torch.bfloat16)), nn.Parameter(
        torch.zeros(5))
    a.grad = torch.arange(6.0).reshape(3, 2)
    b.grad = torch.tensor([1.5, -2.0, 0.25, 3.0], dtype=torch.bfloat16)  # exact in bf16
    by_hand = (sum(x * x for x in range(6)) + 1.5 ** 2 + 2.0 ** 2 + 0.25 ** 2 + 3.0 ** 2) ** 0.5
    assert grad_norm([a, b, none]) == pytest.approx(by_hand, rel=1e-6)
    assert grad_norm([none]) == 0.0 and grad_norm(iter([])) == 0.0


def _with_gradients(method: str):
    model, tok = tiny_model()
    ids = torch.randint(3, 250, (2, 10), generator=torch.Generator().manual_seed(0))
    calibration = [{"input_ids": ids, "labels": ids}] if method == "hybrid" else None
    inject(model, AdapterConfig(method=method, r=4, boft_block_size=4, ga_batches=1), calibration=calibration,
           progress=False)
    model(input_ids=ids, labels=ids).loss.backward()
    return model


class Clip:
    """A clipping function that records what it was given and clips as torch does."""

    def __init__(self):
        self.calls = []

    def __call__(self, params, max_norm):
        self.calls.append([id(p) for p in params])
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def test_lam_and_the_norm_read_the_gradients_before_clipping():
    model = _with_gradients("hybrid")
    reference = copy.deepcopy(model)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        theirs.grad = None if mine.grad is None else mine.grad.clone()
    expected_norm = grad_norm(p for p in reference.parameters() if p.requires_grad)
    after_backward(reference, 0.0)

    before = mixing(model)
    protocol = StepProtocol(model, Clip(), max_grad_norm=1e-3)
    norms = protocol.before_optimizer_step(0.0, lr=1e-3, branches=True)
    assert norms.total == pytest.approx(expected_norm, rel=1e-6) and norms.total > 1e-2
    assert protocol.lam() == pytest.approx(mixing(reference), abs=1e-9)
    assert protocol.lam() != pytest.approx(before, abs=1e-6)  # lam moved: the comparison can fail
    assert set(norms.branches) == {"grad_norm/lora", "grad_norm/boft"}
    assert grad_norm(protocol.params) == pytest.approx(1e-3, rel=1e-4)  # clipped after the norm was read


def test_riemannian_parameters_are_stepped_not_clipped_and_a_failed_check_stops_before_both():
    model = _with_gradients("unitary_full")
    clip = Clip()
    protocol = StepProtocol(model, clip, max_grad_norm=1e-3)
    assert protocol.riem_params and not protocol.params  # unitary_full: everything trainable is Riemannian
    start = [p.detach().clone() for p in protocol.riem_params]

    def stop(norm: float) -> None:
        raise FloatingPointError(norm)

    with pytest.raises(FloatingPointError):
        protocol.before_optimizer_step(0.0, lr=0.05, check=stop)
    assert clip.calls == [] and all(torch.equal(p, s) for p, s in zip(protocol.riem_params, start))

    norms = protocol.before_optimizer_step(0.0, lr=0.05, branches=True)
    assert clip.calls == []  # no optimiser parameter to clip; U is never clipped
    assert norms.branches["grad_norm/riemannian"] == pytest.approx(norms.total, rel=1e-6)
    assert any((p - s).abs().max() > 1e-6 for p, s in zip(protocol.riem_params, start))
    assert all(m.drift() < 1e-5 for m in protocol.riemannian)  # the step is a rotation: U stays unitary
