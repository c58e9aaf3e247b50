"""Adapters over a quantised frozen base (govtune.quantization): every method trains on the int8 base, is
the identity at init, merges to a float checkpoint equal to the unmerged model; BOFT, the hybrid and
LoRA-GA read the dequantised W0 (equal to a float base holding the dequantised weights)."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from adapter_helpers import METHODS, calibration, logits, perturb
from torch import nn

from govtune.adapters import (AdapterConfig, adapter_layers, inject, load_adapter, merge_and_unload,
                              save_adapter)
from govtune.models import load_model, tiny_model
from govtune.quantization import (QuantizationUnavailable, check_scheme, dequantized_weight, is_quantized,
                                  quantize_model)
from govtune.training import TrainConfig, train

CPU_SCHEMES = ("int8", "nf4")  # both run on this CPU; int4 needs torchao's CUDA kernels
WORDS = ["alpha", "bravo", "charlie", "delta"]
PAIRS = [(f"Item {i % 4}: the code word is", f" {WORDS[i % 4]}") for i in range(16)]
CONFIG = dict(r=4, boft_block_size=4, boft_factors=2)


def quantized(scheme: str = "int8"):
    model, tok = tiny_model()
    return quantize_model(model, scheme), tok


def dequantized_twin(qmodel) -> nn.Module:
    """A float tiny-llama whose linear layers hold the quantised model's dequantised weights."""
    twin, _ = tiny_model()
    modules = dict(qmodel.named_modules())
    with torch.no_grad():
        for name, m in twin.named_modules():
            if isinstance(m, nn.Linear) and is_quantized(modules[name]):
                m.weight.copy_(dequantized_weight(modules[name]))
    return twin


def test_quantize_model_replaces_the_linear_layers_but_the_head():
    model, _ = quantized("int8")
    q = [n for n, m in model.named_modules() if is_quantized(m)]
    assert "model.layers.0.self_attn.q_proj" in q and "model.layers.1.mlp.down_proj" in q
    assert "lm_head" not in q and not any(p.requires_grad for p in model.parameters())
    w = dequantized_weight(model.get_submodule("model.layers.0.self_attn.q_proj"))
    ref = tiny_model()[0].model.layers[0].self_attn.q_proj.weight
    assert w.dtype == torch.float32 and 0 < (w - ref).abs().max() < 2e-3  # int8 rounding, not another weight


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_the_int8_base(method):
    model, tok = quantized("int8")
    inject(model, AdapterConfig(method=method, **CONFIG), calibration=calibration(), progress=False)
    result = train(model, tok, PAIRS, config=TrainConfig(epochs=4, lr=1e-2, batch_size=4, progress=False,
                                                         warmup_ratio=0.0))
    losses = [e.train_loss for e in result.history.epochs]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert all(is_quantized(layer.base_layer) for layer in adapter_layers(model).values())  # still quantised


@pytest.mark.parametrize("scheme", CPU_SCHEMES)
@pytest.mark.parametrize("method", METHODS)
def test_identity_at_init_on_the_quantized_base(method, scheme):
    model, _ = quantized(scheme)
    base = logits(model)
    inject(model, AdapterConfig(method=method, **CONFIG), calibration=calibration(), progress=False)
    torch.testing.assert_close(logits(model), base, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_merged_equals_unmerged_and_is_a_dequantized_float_checkpoint(method):
    model, _ = quantized("int8")
    inject(model, AdapterConfig(method=method, **CONFIG), calibration=calibration(), progress=False)
    perturb(model)
    out = logits(model)
    with pytest.warns(UserWarning, match="dequantised float weights"):
        merged = merge_and_unload(model)
    # float32 products of the dequantised weights on both sides: float rounding, not quantisation error
    torch.testing.assert_close(logits(merged), out, atol=1e-4, rtol=1e-4)
    attn = merged.model.layers[0].self_attn.q_proj
    assert type(attn) is nn.Linear and attn.weight.dtype == torch.float32


@pytest.mark.parametrize("method", ["lora_ga", "hybrid"])
def test_gradient_init_uses_the_dequantized_weight(method):
    qmodel, _ = quantized("int8")
    twin = dequantized_twin(qmodel)
    torch.testing.assert_close(logits(twin), logits(qmodel), atol=1e-5, rtol=1e-5)
    config = AdapterConfig(method=method, **CONFIG)
    inject(qmodel, config, calibration=calibration(), progress=False)
    inject(twin, config, calibration=calibration(), progress=False)
    twin_layers = adapter_layers(twin)
    # Compare what the init is made of, invariant to the signs and to rotations inside a subspace whose
    # singular values lie close (those can differ between CPU kernels): the projectors onto A0's row space
    # and B0's column space.
    for name, layer in adapter_layers(qmodel).items():
        ref = twin_layers[name]
        a, b, ra, rb = layer.lora_A0, layer.lora_B0, ref.lora_A0, ref.lora_B0
        torch.testing.assert_close(a.T @ a, ra.T @ ra, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(b @ b.T, rb @ rb.T, atol=1e-4, rtol=1e-4)
        assert float((a.T @ a).abs().max()) > 1e-3  # a real init, not two zero matrices


@pytest.mark.parametrize("method", ["boft", "hybrid"])
def test_the_rotation_reads_the_dequantized_weight(method):
    qmodel, _ = quantized("nf4")
    twin = dequantized_twin(qmodel)
    config = AdapterConfig(method=method, **CONFIG)
    inject(qmodel, config, calibration=calibration(), progress=False)
    inject(twin, config, calibration=calibration(), progress=False)
    perturb(qmodel)
    perturb(twin)
    assert (logits(qmodel) - logits(tiny_model()[0])).abs().max() > 1e-2  # moved away from the base
    torch.testing.assert_close(logits(qmodel), logits(twin), atol=1e-5, rtol=1e-5)


def test_adapter_trained_on_the_quantized_base_loads_on_the_float_checkpoint(tmp_path):
    qmodel, _ = quantized("nf4")
    inject(qmodel, AdapterConfig(method="lora", r=4), progress=False)
    perturb(qmodel)
    save_adapter(qmodel, tmp_path)
    fmodel, _ = tiny_model()
    load_adapter(fmodel, tmp_path)  # same checkpoint: the fingerprint is the float weights'
    for name, layer in adapter_layers(fmodel).items():
        torch.testing.assert_close(layer.lora_B, adapter_layers(qmodel)[name].lora_B)


@pytest.mark.parametrize("method", ["lora_ga", "hybrid", "boft"])
def test_save_and_load_on_the_quantized_base(method, tmp_path):
    model, _ = quantized("nf4")
    inject(model, AdapterConfig(method=method, **CONFIG), calibration=calibration(), progress=False)
    perturb(model)
    save_adapter(model, tmp_path)
    fresh, _ = quantized("nf4")
    load_adapter(fresh, tmp_path)  # LoRA-GA: the saved (A0, B0) go back into the branch, not into W0
    torch.testing.assert_close(logits(fresh), logits(model), atol=1e-6, rtol=1e-6)


def test_a_study_cell_loads_the_quantized_base():
    from govtune.study.config import StudyConfig
    from govtune.study.cell import model_loader as _model_loader

    model, _ = _model_loader(StudyConfig(model="tiny-llama", quantize="nf4"))()
    assert is_quantized(model.model.layers[0].self_attn.q_proj)


def test_load_model_quantizes_and_full_is_refused():
    model, _ = load_model("tiny-llama", quantize="int8")
    assert is_quantized(model.model.layers[0].mlp.up_proj)
    with pytest.raises(ValueError, match="quantised.*without quantize"):
        inject(model, AdapterConfig(method="full"))


def test_unknown_scheme_lists_the_schemes():
    with pytest.raises(ValueError, match="int8, int4, nf4"):
        check_scheme("int3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="int4 runs on CUDA with torchao's kernels")
def test_int4_on_a_cpu_names_what_is_missing():
    with pytest.raises(QuantizationUnavailable, match=r"int4.*(mslk|torchao).*use 'int8' or 'nf4'"):
        load_model("tiny-llama", quantize="int4")


def test_missing_library_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes now raises ImportError
    with pytest.raises(QuantizationUnavailable, match="nf4.*pip install 'bitsandbytes"):
        check_scheme("nf4")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bitsandbytes' CUDA kernels: needs a GPU")
@pytest.mark.parametrize("scheme", ["nf4", "int8", "int4"])
@pytest.mark.parametrize("method", ["lora", "hybrid"])
def test_cuda_quantized_base_identity_and_training(method, scheme):
    try:
        check_scheme(scheme, "cuda")
    except QuantizationUnavailable as e:
        pytest.skip(str(e))
    model, tok = tiny_model()
    model = quantize_model(model.cuda(), scheme)
    ids = torch.randint(3, 300, (2, 12), device="cuda")
    with torch.no_grad():
        base = model(input_ids=ids).logits
    batches = [{k: v.cuda() for k, v in b.items()} for b in calibration()]
    inject(model, AdapterConfig(method=method, **CONFIG), calibration=batches, progress=False)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, base, atol=1e-4, rtol=1e-4)
    result = train(model, tok, PAIRS, config=TrainConfig(epochs=3, lr=1e-2, batch_size=4, progress=False))
    assert math.isfinite(result.history.epochs[-1].train_loss)
