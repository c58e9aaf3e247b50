"""merged_for_inference: inside the block the model computes what the unmerged adapter computes (up to float
rounding) through plain layers; on exit every base weight has its exact bytes back."""

from __future__ import annotations

import pytest
import torch

from govtune.adapters import adapter_layers, merge_and_unload, merged_for_inference

from adapter_helpers import METHODS, adapted, inputs, logits, perturb


@pytest.mark.parametrize("method", METHODS)
def test_merged_block_equals_the_adapter_and_restores_the_base(method):
    model, _ = adapted("tiny-llama", method)
    perturb(model)
    model.eval()
    before = {name: (layer.weight.detach().clone(), layer.merged) for name, layer in adapter_layers(model).items()}
    unmerged = logits(model)

    with merged_for_inference(model):
        layers = adapter_layers(model).values()
        assert all(layer.merged for layer in layers)
        merged = logits(model)
        # the weights really changed: a block that merged nothing could not pass the equality below by chance
        assert any(not torch.equal(layer.weight, before[name][0]) for name, layer in adapter_layers(model).items())
    torch.testing.assert_close(merged, unmerged, atol=2e-5, rtol=1e-4)
    for name, layer in adapter_layers(model).items():
        assert torch.equal(layer.weight, before[name][0]), name  # bit for bit, not unmerge's rounding
        assert layer.merged is False
    torch.testing.assert_close(logits(model), unmerged, atol=0, rtol=0)


def test_an_error_inside_the_block_still_restores_the_base():
    model, _ = adapted("tiny-llama", "boft")
    perturb(model)
    weights = {name: layer.weight.detach().clone() for name, layer in adapter_layers(model).items()}
    with pytest.raises(RuntimeError, match="inside"):
        with merged_for_inference(model):
            raise RuntimeError("inside")
    for name, layer in adapter_layers(model).items():
        assert torch.equal(layer.weight, weights[name]) and not layer.merged


def test_a_model_without_adapters_passes_through():
    model, _ = adapted("tiny-llama", "lora")
    ids = inputs(3)
    plain = merge_and_unload(model)
    expected = logits(plain, ids)
    with merged_for_inference(plain) as same:
        assert same is plain
        torch.testing.assert_close(logits(plain, ids), expected, atol=0, rtol=0)
