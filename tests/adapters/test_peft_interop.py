"""Against PEFT: govtune LoRA computes what PEFT LoRA computes; LoRA and LoRA-GA export load in PeftModel."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import MODELS, adapted, logits, perturb
from peft import LoraConfig, PeftModel, get_peft_model

from govtune.adapters import adapter_layers, export_peft
from govtune.models import tiny_model


@pytest.mark.parametrize("kind,rslora", [(k, False) for k in MODELS] + [("tiny-llama", True)])
def test_lora_equals_peft_lora_with_the_same_weights(kind, rslora):
    ours, config = adapted(kind, "lora", use_rslora=rslora)
    perturb(ours)
    layers = adapter_layers(ours)
    base, _ = tiny_model(kind)
    peft_model = get_peft_model(base, LoraConfig(r=config.r, lora_alpha=config.alpha, target_modules=sorted(layers),
                                                 lora_dropout=0.0, use_rslora=rslora)).eval()
    modules = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for name, layer in layers.items():
            modules[name].lora_A["default"].weight.copy_(layer.lora_A)
            modules[name].lora_B["default"].weight.copy_(layer.lora_B)
    torch.testing.assert_close(logits(ours), logits(peft_model), atol=1e-6, rtol=1e-6)
    # Trainable parameter counts agree too.
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == \
        sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind,method,rslora", [(k, m, False) for k in MODELS for m in ("lora", "lora_ga")]
                         + [("tiny-llama", "lora_ga", True)])
def test_export_loads_in_peft_with_equal_outputs(kind, method, rslora, tmp_path):
    ours, config = adapted(kind, method, use_rslora=rslora)
    perturb(ours)
    out = logits(ours)
    export_peft(ours, tmp_path / "peft")
    base, _ = tiny_model(kind)  # the ORIGINAL base weights: LoRA-GA's offset is folded into the export
    loaded = PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    torch.testing.assert_close(logits(loaded), out, atol=1e-5, rtol=1e-5)
    expected_rank = config.r * (2 if method == "lora_ga" else 1)
    assert loaded.peft_config["default"].r == expected_rank


def test_export_rejects_a_model_without_adapters(tmp_path):
    model, _ = tiny_model("tiny-llama")
    with pytest.raises(ValueError, match="inject"):
        export_peft(model, tmp_path)
