"""`unitary_checkpoint`: recomputing U x in backward changes no value and no gradient, only what is stored."""

import pytest
import torch
from torch import nn

from adapter_helpers import adapted, inputs, logits, perturb

from govtune.adapters import AdapterConfig, adapter_layers, merge_and_unload
from govtune.adapters.unitary import UnitaryFullLayer, UnitaryLayer
from govtune.models import tiny_model


def _layer(recompute: bool, dtype=torch.float64) -> UnitaryLayer:
    torch.manual_seed(0)
    base = nn.Linear(24, 10).to(dtype)
    base.requires_grad_(False)
    layer = UnitaryLayer(base, AdapterConfig(method="unitary", unitary_checkpoint=recompute), "p")
    with torch.no_grad():  # away from the identity, so every parameter gets a non-trivial gradient
        layer.unitary_U.phases.normal_(0, 0.5)
        layer.unitary_U.reflections.normal_(0, 0.5)
    return layer


def _grads(layer: UnitaryLayer, x: torch.Tensor) -> list[torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = layer(x)
    # A loss that weighs every output differently, so a wrong recomputation cannot cancel out.
    (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)).sin().sum().backward()
    return [x.grad] + [p.grad for p in layer.unitary_U.parameters()]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recompute_gives_the_same_gradients_for_every_parameter_and_the_input(dtype):
    x = torch.randn(3, 5, 24, dtype=dtype)
    with_recompute, stored = _grads(_layer(True, dtype), x), _grads(_layer(False, dtype), x)
    assert len(with_recompute) == 3  # x, phases, reflections
    for a, b in zip(with_recompute, stored):
        assert a is not None and a.abs().max() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_recompute_stores_only_the_layer_input():
    """The point of the option: autograd keeps x (and the frozen weight), not the complex FFT chain."""
    saved = {}
    for recompute in (True, False):
        layer = _layer(recompute, torch.float32)
        x = torch.randn(4, 16, 24)
        frozen = layer.base_layer.weight.untyped_storage().data_ptr()
        storages = {}

        def pack(t):
            if t.untyped_storage().data_ptr() != frozen:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x).sum().backward()
        saved[recompute] = sum(storages.values())
    x_bytes = 4 * 16 * 24 * 4
    assert saved[True] == x_bytes
    assert saved[False] >= 4 * x_bytes  # several input-sized complex intermediates


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-bloom"])
def test_recompute_keeps_identity_at_init_unitarity_and_merge(kind):
    for recompute in (True, False):
        torch.manual_seed(0)
        model, _ = adapted(kind, "unitary", unitary_checkpoint=recompute)
        layers = adapter_layers(model).values()
        assert all(layer.checkpoint == recompute for layer in layers)
        torch.testing.assert_close(logits(model), logits(tiny_model(kind)[0]), atol=2e-5, rtol=0)
        perturb(model)
        ids = inputs()
        model.train()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()  # through the recomputation when it is on
        for layer in layers:
            u = layer.unitary_U.matrix()
            torch.testing.assert_close(u.T @ u, torch.eye(u.shape[0]), atol=1e-5, rtol=0)
            assert layer.unitary_U.phases.grad is not None
        model.eval()
        before = logits(model, ids)
        merged = merge_and_unload(model)
        torch.testing.assert_close(logits(merged, ids), before, atol=1e-5, rtol=1e-4)


def test_dense_unitary_never_recomputes():
    # Its only stored intermediate is one complex copy of x, as large as x itself: nothing to gain.
    layer = UnitaryFullLayer(nn.Linear(8, 4), AdapterConfig(method="unitary_full", unitary_checkpoint=True), "p")
    assert not layer.checkpoint
