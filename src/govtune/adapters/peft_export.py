"""Export LoRA and LoRA-GA adapters in the PEFT format (`PeftModel.from_pretrained` loads them).

A LoRA-GA model's frozen weights are offset (W0 - s B0 A0), but a PEFT user has the ORIGINAL base. The
export is therefore a LoRA relative to the original weights, as PEFT itself does when it converts PiSSA or
OLoRA adapters: delta = s B A - s B0 A0 = s [B, -B0] [A; A0], a rank-2r LoRA with alpha' = 2r s so that
alpha' / 2r = s (s = alpha / r, or alpha / sqrt(r) with rsLoRA: PEFT's plain scaling reproduces either).
The base fingerprint (of the original weights) is kept in the safetensors metadata."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from transformers.pytorch_utils import Conv1D

from govtune.adapters.inject import adapter_layers, adapter_state
from govtune.adapters.lora_ga import LoraGALayer
from govtune.atomic import atomic_write_with

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"


def export_peft(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the model's LoRA / LoRA-GA adapter as a PEFT LoRA adapter directory; returns it."""
    from peft import LoraConfig  # seconds to import, and only this export needs it

    state = adapter_state(model)
    if state is None or state["config"].method not in ("lora", "lora_ga"):
        method = None if state is None else state["config"].method
        raise ValueError(f"export_peft writes LoRA and LoRA-GA adapters; this model has {method!r}. Use "
                         f"save_adapter for govtune adapters or merge_and_unload + save_pretrained for a "
                         f"plain checkpoint")
    config = state["config"]
    layers = adapter_layers(model)
    if any(layer.merged for layer in layers.values()):
        raise ValueError("unmerge the adapters (unmerge_adapters(model)) before export_peft")
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        with torch.no_grad():
            a, b = layer.factors_from_start() if isinstance(layer, LoraGALayer) else (layer.lora_A, layer.lora_B)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.cpu().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.cpu().contiguous()
    rank = config.r * (2 if config.method == "lora_ga" else 1)
    peft_config = LoraConfig(
        r=rank,
        lora_alpha=config.scaling * rank,  # PEFT's s = lora_alpha / r: the same s, rsLoRA or not
        target_modules=sorted(layers),  # full names: exactly the adapted layers
        fan_in_fan_out=any(isinstance(layer.base_layer, Conv1D) for layer in layers.values()),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(getattr(getattr(model, "config", None), "name_or_path", "") or "") or None,
    )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "govtune_base_fingerprint": state["fingerprint"],
            "govtune_method": config.method}
    atomic_write_with(out / PEFT_WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata=meta))
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # PEFT writes the JSON (sets -> lists, version)
        peft_config.save_pretrained(tmp)
        os.replace(Path(tmp) / PEFT_CONFIG, out / PEFT_CONFIG)
    return out
