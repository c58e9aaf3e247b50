"""Generic checks over every (method, model): identity at init, merge == forward from a non-identity state,
unmerge restores, save/load round trip, only adapter weights train, merged model is a plain checkpoint."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import METHODS, MODELS, adapted, calibration, inputs, logits, perturb
from transformers import AutoModelForCausalLM

from govtune.adapters import (AdapterLayer, adapter_layers, inject, load_adapter, merge_adapters, merge_and_unload,
                              save_adapter, trainable_parameters, unmerge_adapters, AdapterConfig)
from govtune.models import tiny_model

CASES = [(k, m) for k in MODELS for m in METHODS]
ATOL = 2e-5


def base_logits(kind: str) -> torch.Tensor:
    return logits(tiny_model(kind)[0])


@pytest.mark.parametrize("kind,method", CASES)
def test_identity_at_init(kind, method):
    model, _ = adapted(kind, method)
    assert adapter_layers(model), "no layer was adapted"
    torch.testing.assert_close(logits(model), base_logits(kind), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind,method", CASES)
def test_merge_equals_forward_and_unmerge_restores(kind, method):
    model, _ = adapted(kind, method)
    perturb(model)
    out = logits(model)
    assert (out - base_logits(kind)).abs().max() > 1e-3, "perturbation left the adapter at identity"
    weights = {n: l.weight.detach().clone() for n, l in adapter_layers(model).items()}
    merge_adapters(model)
    assert all(l.merged for l in adapter_layers(model).values())
    torch.testing.assert_close(logits(model), out, atol=1e-4, rtol=1e-4)
    unmerge_adapters(model)
    for n, l in adapter_layers(model).items():
        torch.testing.assert_close(l.weight, weights[n], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits(model), out, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind,method", CASES)
def test_save_load_round_trip(kind, method, tmp_path):
    model, config = adapted(kind, method)
    perturb(model)
    out = logits(model)
    save_adapter(model, tmp_path / "adapter")
    fresh, _ = tiny_model(kind)
    load_adapter(fresh, tmp_path / "adapter")  # no calibration needed: the saved state holds A0, B0
    torch.testing.assert_close(logits(fresh), out, atol=1e-6, rtol=0)
    assert trainable_parameters(fresh) == trainable_parameters(model)


@pytest.mark.parametrize("kind,method", CASES)
def test_only_adapter_weights_train(kind, method):
    model, _ = adapted(kind, method)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".base_layer." not in n for n in trainable)
    owners = set(adapter_layers(model))
    assert all(any(n.startswith(o + ".") for o in owners) for n in trainable)
    assert trainable_parameters(model) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = inputs()
    model(input_ids=ids, labels=ids).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n


@pytest.mark.parametrize("kind,method", [(MODELS[0], m) for m in METHODS] + [(MODELS[1], "hybrid")])
def test_merged_model_is_plain_transformers_checkpoint(kind, method, tmp_path):
    model, _ = adapted(kind, method)
    perturb(model)
    out = logits(model)
    merge_and_unload(model)
    assert not any(isinstance(m, AdapterLayer) for m in model.modules())
    torch.testing.assert_close(logits(model), out, atol=1e-4, rtol=1e-4)
    model.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    torch.testing.assert_close(logits(reloaded), out, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_full_trains_everything_and_round_trips(kind, tmp_path):
    model, _ = tiny_model(kind)
    inject(model, AdapterConfig(method="full"))
    assert all(p.requires_grad for p in model.parameters())
    assert trainable_parameters(model) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out = logits(model)
    save_adapter(model, tmp_path / "full")
    fresh, _ = tiny_model(kind)
    load_adapter(fresh, tmp_path / "full")
    torch.testing.assert_close(logits(fresh), out, atol=0, rtol=0)


def test_conv1d_targets_work_like_linear():
    """GPT-2 style Conv1D projections (weight stored d_in x d_out) are adapted, merged and identity at init."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=384, n_embd=64, n_layer=2, n_head=4, n_positions=64)).eval()
    ref = logits(model)
    inject(model, AdapterConfig(method="hybrid", r=4), calibration=calibration(), progress=False)
    torch.testing.assert_close(logits(model), ref, atol=ATOL, rtol=0)
    perturb(model)
    out = logits(model)
    merge_and_unload(model)
    torch.testing.assert_close(logits(model), out, atol=1e-4, rtol=1e-4)
