"""The learned mixer: lam = lam_min + (1 - 2 lam_min) sigmoid(phi), phi trained on a validation loss only."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from adapter_helpers import MODELS, adapted, inputs, logits, perturb
from safetensors.torch import load_file
from torch import nn

from govtune.adapters import (AdapterConfig, MixerOptimizer, learned_layers, load_adapter, merge_adapters,
                              mixer_gradient, mixer_parameters, mixing, optimizer_parameters, phi_values,
                              save_adapter, trainable_parameters, unmerge_adapters)
from govtune.adapters.hybrid import HybridLayer
from govtune.models import tiny_model


def learned(kind: str = "tiny-llama", **overrides):
    """A tiny model with learned hybrid layers, moved off the identity, each layer at its own lam."""
    model, config = adapted(kind, "hybrid", lam_schedule="learned", **overrides)
    perturb(model)
    for i, layer in enumerate(learned_layers(model).values()):
        layer.set_lam(0.15 + 0.7 * i / 7)
    return model, config


def val_loss(ids: torch.Tensor):
    """Next-token cross-entropy in the logits' dtype (transformers' own loss upcasts to float32 only)."""

    def loss(m):
        out = m(input_ids=ids).logits[:, :-1]  # (B, T-1, V)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), ids[:, 1:].reshape(-1))

    return loss


def central_differences(model, loss_fn, eps: float) -> tuple[list[float], list[float]]:
    """(d loss / d phi from mixer_gradient, central differences of the loss through the float-lam forward)
    for every learned layer."""
    loss = mixer_gradient(model, loss_fn)
    with torch.no_grad():
        assert loss == pytest.approx(float(loss_fn(model)), rel=1e-12)  # the same map as the float-lam forward
    analytic, numeric = [], []
    for layer in learned_layers(model).values():
        analytic.append(float(layer.mixer_phi.grad))
        phi0 = float(layer.mixer_phi)
        values = []
        with torch.no_grad():
            for sign in (1, -1):
                layer.mixer_phi.fill_(phi0 + sign * eps)
                layer.sync_lam()  # the training forward: lam as a plain float
                values.append(float(loss_fn(model)))
            layer.mixer_phi.fill_(phi0)
            layer.sync_lam()
        numeric.append((values[0] - values[1]) / (2 * eps))
    assert min(abs(a) for a in analytic) > 1e-6  # the perturbed adapter makes every lam matter
    return analytic, numeric


class Mlp(nn.Module):
    """Three hybrid-adapted layers, float64 throughout: no float32 step anywhere in the loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        config = AdapterConfig(method="hybrid", r=2, lam_schedule="learned", boft_block_size=4, boft_factors=2)
        self.layers = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(((12, 16), (16, 16), (16, 8))):
            layer = HybridLayer(nn.Linear(d_in, d_out).double(), config, f"layers.{i}")
            layer.init_from_gradient(torch.randn(d_out, d_in, dtype=torch.float64))
            self.layers.append(layer)
        self.double()
        perturb(self)
        for i, layer in enumerate(self.layers):
            layer.set_lam((0.2, 0.5, 0.8)[i])

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.tanh(layer(x))
        return self.layers[-1](x)


def test_phi_gradient_equals_central_differences_of_the_validation_loss_in_float64():
    model = Mlp()
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 12, generator=g, dtype=torch.float64), torch.randint(0, 8, (6,), generator=g)
    # eps 1e-5: truncation ~eps^2 |f'''| / 6 ~ 1e-11, rounding ~1e-16 / eps ~ 1e-11, so 1e-7 is ample.
    analytic, numeric = central_differences(model, lambda m: F.cross_entropy(m(x), y), eps=1e-5)
    torch.testing.assert_close(torch.tensor(analytic), torch.tensor(numeric), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("kind", MODELS)
def test_phi_gradient_equals_central_differences_of_the_validation_loss_on_tiny_models(kind):
    model, _ = learned(kind)
    model.double()
    model.eval()
    for layer in learned_layers(model).values():
        layer.sync_lam()  # the float lam from the float64 phi, as in the differences
    # transformers runs RMSNorm and the attention softmax in float32 even in a float64 model: the loss carries
    # ~1e-9 of rounding noise, so eps = 1e-2 (noise / eps ~ 1e-7, truncation eps^2 |f'''| / 6 ~ 1e-7 measured);
    # tolerance 1e-6 absolute (gradients here are 1e-4 .. 3e-3) plus 0.1% relative.
    analytic, numeric = central_differences(model, val_loss(inputs(seed=7, batch=3, length=10)), eps=1e-2)
    torch.testing.assert_close(torch.tensor(analytic), torch.tensor(numeric), rtol=1e-3, atol=1e-6)


def test_lam_stays_inside_the_clamp_for_any_phi():
    model, _ = adapted("tiny-llama", "hybrid", lam_schedule="learned", lam_min=0.1)
    layer = next(iter(learned_layers(model).values()))
    lo, hi = torch.tensor([0.1, 0.9]).tolist()  # the bounds as float32 holds them (lam is float32)
    for phi in (-1e6, -50.0, -3.0, 0.0, 2.5, 50.0, 1e6):
        with torch.no_grad():
            layer.mixer_phi.fill_(phi)
        lam = layer.sync_lam()
        assert lo <= lam <= hi
        assert lam == pytest.approx(0.1 + 0.8 / (1 + math.exp(-max(min(phi, 700), -700))), abs=1e-6)
        assert float(layer.lam) == lam
    with pytest.raises(ValueError, match="strictly inside"):
        layer.set_lam(0.9)
    # An optimiser pushing hard one way: lam saturates at the bound, never beyond.
    opt = MixerOptimizer(model, lr=5.0)
    for _ in range(50):
        for p in mixer_parameters(model):
            p.grad = torch.ones_like(p)
        opt.step()
    assert all(lo <= v <= hi for v in mixing(model).values())
    assert min(mixing(model).values()) == lo


def test_training_loss_gives_phi_no_gradient_and_the_mixer_gives_the_rest_none():
    model, _ = learned()
    phis = mixer_parameters(model)
    assert len(phis) == 8 and not any(p.requires_grad for p in phis)
    assert not {id(p) for p in phis} & {id(p) for p in optimizer_parameters(model)}  # never in AdamW
    ids = inputs()
    model(input_ids=ids, labels=ids).loss.backward()  # the training forward and backward
    assert all(p.grad is None for p in phis)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None for p in trained)
    before = [p.grad.clone() for p in trained]
    mixer_gradient(model, val_loss(inputs(seed=3)))  # the validation step: phi only
    assert all(p.grad is not None for p in phis) and not any(p.requires_grad for p in phis)
    for p, g in zip(trained, before):
        assert torch.equal(p.grad, g)
    assert trainable_parameters(model) == sum(p.numel() for p in trained) + len(phis)


def test_mixer_steps_lower_the_loss_they_are_trained_on():
    model, _ = learned(lam_min=0.05)
    model.eval()
    ids = inputs(seed=5)
    opt = MixerOptimizer(model, lr=0.1)
    losses = []
    for _ in range(15):
        losses.append(mixer_gradient(model, val_loss(ids)))
        opt.step()
    assert losses[-1] < losses[0] - 1e-3
    lams = mixing(model)
    assert all(abs(lams[n] - 0.05 - 0.9 * torch.sigmoid(torch.tensor(phi)).item()) < 1e-6
               for n, phi in phi_values(model).items())


@pytest.mark.parametrize("kind", MODELS)
def test_save_load_keeps_phi_and_lam(kind, tmp_path):
    model, config = learned(kind)
    out = logits(model)
    save_adapter(model, tmp_path / "adapter")
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert sum(k.endswith(".mixer_phi") for k in saved) == len(learned_layers(model))
    meta = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert meta["config"]["lam_schedule"] == "learned" and meta["config"]["mixer_lr"] == config.mixer_lr
    fresh, _ = tiny_model(kind)
    load_adapter(fresh, tmp_path / "adapter")
    assert phi_values(fresh) == phi_values(model) and mixing(fresh) == mixing(model)
    assert len(set(mixing(fresh).values())) == len(mixing(fresh))  # every layer its own lam
    torch.testing.assert_close(logits(fresh), out, atol=1e-6, rtol=0)
    assert trainable_parameters(fresh) == trainable_parameters(model)


@pytest.mark.parametrize("kind", MODELS)
def test_merge_equals_the_unmerged_forward(kind):
    model, _ = learned(kind)
    out = logits(model)
    weights = {n: l.weight.detach().clone() for n, l in learned_layers(model).items()}
    merge_adapters(model)
    torch.testing.assert_close(logits(model), out, atol=1e-4, rtol=1e-4)
    unmerge_adapters(model)
    for n, l in learned_layers(model).items():
        torch.testing.assert_close(l.weight, weights[n], atol=1e-5, rtol=1e-5)


def test_config_rejects_bad_mixer_settings():
    with pytest.raises(ValueError, match="mixer_lr"):
        AdapterConfig(method="hybrid", lam_schedule="learned", mixer_lr=0.0)
    with pytest.raises(ValueError, match="mixer_every"):
        AdapterConfig(method="hybrid", lam_schedule="learned", mixer_every=0)
    with pytest.raises(ValueError, match=r"lam_init.*strictly inside"):
        AdapterConfig(method="hybrid", lam_schedule="learned", lam_min=0.1, lam_init=0.1)
    with pytest.raises(ValueError, match="nothing to learn"):
        mixer_gradient(adapted("tiny-llama", "hybrid")[0], val_loss(inputs()))
