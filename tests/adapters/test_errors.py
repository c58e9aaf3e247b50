"""Bad input gets a ValueError / FileNotFoundError that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import adapted, calibration, logits
from torch import nn

from govtune.adapters import AdapterConfig, inject, load_adapter, merge_and_unload, save_adapter
from govtune.models import tiny_model


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="lora_ga, boft, unitary, unitary_full, hybrid"):
        AdapterConfig(method="dora")


@pytest.mark.parametrize("kwargs,match", [
    ({"r": 0}, "r must be a positive integer"),
    ({"alpha": -1}, "alpha"),
    ({"target_modules": "q_proj("}, "not a valid regex"),
    ({"target_modules": []}, "non-empty list"),
    ({"lam_min": 0.6}, r"lam_min must be in \[0, 0.5\)"),
    ({"lam_ema": 1.0}, "lam_ema"),
    ({"lam_schedule": "cosine"}, "adaptive, fixed, anneal"),
    ({"ga_direction": "ArBr"}, "arb2r, sigma_sqrt"),
    ({"lam_anneal": (1.5, 0.2)}, "lam_anneal"),
    ({"use_rslora": "yes"}, "use_rslora must be true or false"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig(**kwargs)


def test_config_round_trips_through_dict():
    c = AdapterConfig(method="hybrid", target_modules=r".*\.(q|v)_proj", lam_anneal=(0.9, 0.1))
    assert AdapterConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown AdapterConfig fields"):
        AdapterConfig.from_dict({"method": "lora", "rank": 8})


def test_targets_matching_nothing_list_existing_names():
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match=r"match no module.*q_proj"):
        inject(model, AdapterConfig(target_modules=["query_key_value"]))
    assert all(p.requires_grad for p in model.parameters())  # the model was left untouched


def test_target_that_is_not_linear():
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match="LlamaAttention.*nn.Linear or Conv1D"):
        inject(model, AdapterConfig(target_modules=["self_attn"]))


def test_regex_targets():
    model, _ = tiny_model("tiny-llama")
    inject(model, AdapterConfig(target_modules=r"model\.layers\.0\.self_attn\.(q|v)_proj"))
    assert sorted(n for n, p in model.named_parameters() if p.requires_grad) == [
        "model.layers.0.self_attn.q_proj.lora_A", "model.layers.0.self_attn.q_proj.lora_B",
        "model.layers.0.self_attn.v_proj.lora_A", "model.layers.0.self_attn.v_proj.lora_B"]


def test_block_size_not_dividing_the_layer():
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match=r"boft_block_size=6 does not divide.*64"):
        inject(model, AdapterConfig(method="boft", boft_block_size=6))


def test_too_many_butterfly_factors_names_the_layer():
    model, _ = tiny_model("tiny-llama")  # k_proj: 32 outputs = 4 blocks of 8: at most m = 3
    with pytest.raises(ValueError, match=r"k_proj .*n_factors=4"):
        inject(model, AdapterConfig(method="boft", boft_factors=4))


def test_odd_input_for_unitary():
    model = nn.Sequential(nn.Linear(63, 64))
    with pytest.raises(ValueError, match="even input size; this layer has 63"):
        inject(model, AdapterConfig(method="unitary", target_modules=["0"]))


@pytest.mark.parametrize("method", ["lora_ga", "hybrid"])
def test_gradient_methods_need_calibration(method):
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match="pass calibration="):
        inject(model, AdapterConfig(method=method))


def test_unknown_model_type_asks_for_target_modules():
    model = nn.Sequential(nn.Linear(8, 8))
    with pytest.raises(ValueError, match="set AdapterConfig.target_modules"):
        inject(model, AdapterConfig())


def test_double_inject():
    model, _ = adapted("tiny-llama", "lora")
    with pytest.raises(ValueError, match="merge_and_unload"):
        inject(model, AdapterConfig())
    merge_and_unload(model)
    inject(model, AdapterConfig(method="boft"))  # fine after unloading


def test_loading_onto_a_different_base(tmp_path):
    model, _ = adapted("tiny-llama", "lora_ga")
    save_adapter(model, tmp_path / "a")
    other, _ = tiny_model("tiny-llama", seed=1)
    with pytest.raises(ValueError, match="different base model"):
        load_adapter(other, tmp_path / "a")
    assert not any(hasattr(m, "lora_A") for m in other.modules())  # nothing injected on failure


def test_missing_adapter_directory(tmp_path):
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(FileNotFoundError, match="save_adapter"):
        load_adapter(model, tmp_path / "nowhere")


def test_save_without_adapter(tmp_path):
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match="inject"):
        save_adapter(model, tmp_path)


def test_load_into_model_with_other_adapter(tmp_path):
    model, _ = adapted("tiny-llama", "lora")
    save_adapter(model, tmp_path / "a")
    other, _ = adapted("tiny-llama", "boft")
    with pytest.raises(ValueError, match="fresh base model"):
        load_adapter(other, tmp_path / "a")


def test_load_into_same_adapter_replaces_lora_ga_offset(tmp_path):
    """Loading into a model that already has a LoRA-GA adapter swaps the offset instead of stacking it."""
    model, _ = adapted("tiny-llama", "lora_ga")
    save_adapter(model, tmp_path / "a")
    expected = logits(model)
    other, _ = tiny_model("tiny-llama")
    inject(other, AdapterConfig(method="lora_ga", r=4), calibration=calibration(1)[:1] + [
        {"input_ids": torch.randint(3, 300, (2, 9)), "labels": torch.randint(3, 300, (2, 9))}], progress=False)
    load_adapter(other, tmp_path / "a")
    # Equal up to the rounding of adding back one offset and subtracting another.
    torch.testing.assert_close(logits(other), expected, atol=1e-5, rtol=0)
    layer = other.model.layers[0].self_attn.q_proj
    ref = model.model.layers[0].self_attn.q_proj
    torch.testing.assert_close(layer.weight, ref.weight, atol=1e-6, rtol=0)
