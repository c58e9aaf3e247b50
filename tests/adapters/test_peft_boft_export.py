"""BOFT in PEFT's format: an input-side govtune BOFT loads in `PeftModel.from_pretrained` with the same
outputs. PEFT applies one butterfly factor wherever its CUDA extension (fbd_cuda) does not build, every CPU
included, so m = 1 is tested here and m > 1 only where that extension runs."""

from __future__ import annotations

import json

import pytest
import torch
from adapter_helpers import adapted, logits, perturb

from govtune.adapters import export_peft
from govtune.models import tiny_model


def _export_and_load(tmp_path, factors: int, block: int):
    from peft import PeftModel

    ours, config = adapted("tiny-llama", "boft", boft_side="input", boft_factors=factors, boft_block_size=block)
    perturb(ours)
    out = logits(ours)
    export_peft(ours, tmp_path / "peft")
    base, _ = tiny_model("tiny-llama")
    untouched = logits(base)
    loaded = PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    return out, logits(loaded), untouched, json.loads((tmp_path / "peft" / "adapter_config.json").read_text())


@pytest.mark.parametrize("block", [4, 8])
def test_input_side_boft_one_factor_equals_peft_boft(tmp_path, block):
    out, peft_out, untouched, cfg = _export_and_load(tmp_path, factors=1, block=block)
    assert (out - untouched).abs().max() > 1e-2  # the rotation moved the model: the equality below is not R = I
    torch.testing.assert_close(peft_out, out, atol=1e-5, rtol=1e-5)
    assert cfg["peft_type"] == "BOFT" and cfg["boft_block_size"] == block and cfg["boft_n_butterfly_factor"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="PEFT's BOFT runs m > 1 butterfly factors only with its CUDA extension (fbd_cuda); "
                           "on a CPU it builds one factor, so an m = 2 export cannot load here")
def test_input_side_boft_two_factors_equals_peft_boft_where_its_cuda_path_runs(tmp_path):
    from peft.tuners.boft.layer import get_fbd_cuda

    if get_fbd_cuda() is None:
        pytest.skip("PEFT's fbd_cuda extension did not build on this CUDA machine (it needs ninja and nvcc)")
    out, peft_out, untouched, cfg = _export_and_load(tmp_path, factors=2, block=4)
    assert (out - untouched).abs().max() > 1e-2
    torch.testing.assert_close(peft_out, out, atol=1e-5, rtol=1e-5)
    assert cfg["boft_n_butterfly_factor"] == 2


def test_output_side_boft_export_says_why_and_what_to_do(tmp_path):
    model, _ = adapted("tiny-llama", "boft")
    with pytest.raises(ValueError, match=r"boft_side='input'.*merge_and_unload"):
        export_peft(model, tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("method", ["hybrid", "unitary", "unitary_full"])
def test_hybrid_and_unitary_export_is_the_merged_checkpoint(tmp_path, method):
    model, _ = adapted("tiny-llama", method)
    with pytest.raises(ValueError, match=r"merged checkpoint.*merge_and_unload\(model\).*save_pretrained"):
        export_peft(model, tmp_path)
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_input_side_boft_merges_to_w0_r_and_back():
    from govtune.adapters import merge_adapters, unmerge_adapters

    model, _ = adapted("tiny-llama", "boft", boft_side="input", boft_factors=2, boft_block_size=4)
    perturb(model)
    before = {n: p.clone() for n, p in model.named_parameters() if "base_layer" in n}
    out = logits(model)
    merge_adapters(model)
    torch.testing.assert_close(logits(model), out, atol=1e-5, rtol=1e-5)
    unmerge_adapters(model)
    for n, p in model.named_parameters():
        if n in before:
            torch.testing.assert_close(p, before[n], atol=1e-6, rtol=1e-6)
