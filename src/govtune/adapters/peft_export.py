"""Export LoRA, LoRA-GA and (input-side) BOFT adapters in the PEFT format (`PeftModel.from_pretrained`
loads them).

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
from govtune.adapters.io import saved_modules
from govtune.adapters.lora_ga import LoraGALayer
from govtune.atomic import atomic_write_with

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"


MERGED_ONLY = {
    "hybrid": "PEFT has no LoRA-GA + BOFT mixture",
    "unitary": "PEFT has no unitary adapter",
    "unitary_full": "PEFT has no unitary adapter",
    "full": "every weight trained",
}


def export_peft(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the model's adapter as a PEFT adapter directory (`PeftModel.from_pretrained` loads it); returns
    it. LoRA and LoRA-GA become a PEFT LoRA, BOFT with `boft_side="input"` a PEFT BOFT. The hybrid and the
    unitary adapters have no PEFT equivalent: their export is the merged checkpoint."""
    state = adapter_state(model)
    method = None if state is None else state["config"].method
    if method in MERGED_ONLY:
        raise ValueError(f"{method!r} has no PEFT format ({MERGED_ONLY[method]}): its export is the merged "
                         f"checkpoint, merged = merge_and_unload(model); merged.save_pretrained(path) (and the "
                         f"tokenizer), or save_adapter(model, path) to keep it a govtune adapter")
    if method not in ("lora", "lora_ga", "boft"):
        raise ValueError(f"export_peft writes LoRA, LoRA-GA and BOFT adapters; this model has {method!r}: call "
                         f"inject(model, config) first")
    extra = saved_modules(model)
    if extra:
        raise ValueError(f"this model trains parameters besides its adapter ({sorted(extra)[:3]}, e.g. a "
                         f"classification head), which this export does not write: save_adapter(model, path) "
                         f"keeps both")
    layers = adapter_layers(model)
    if any(layer.merged for layer in layers.values()):
        raise ValueError("unmerge the adapters (unmerge_adapters(model)) before export_peft")
    config = state["config"]
    tensors, peft_config = (_boft(config, layers) if method == "boft" else _lora(config, layers))
    peft_config.base_model_name_or_path = str(getattr(getattr(model, "config", None), "name_or_path", "") or
                                              "") or None
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "govtune_base_fingerprint": state["fingerprint"], "govtune_method": method}
    atomic_write_with(out / PEFT_WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata=meta))
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # PEFT writes the JSON (sets -> lists, version)
        peft_config.save_pretrained(tmp)
        os.replace(Path(tmp) / PEFT_CONFIG, out / PEFT_CONFIG)
    return out


def _lora(config, layers) -> tuple[dict[str, torch.Tensor], object]:
    from peft import LoraConfig  # seconds to import, and only this export needs it

    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        with torch.no_grad():
            a, b = layer.factors_from_start() if isinstance(layer, LoraGALayer) else (layer.lora_A, layer.lora_B)
        tensors[f"base_model.model.{name}.lora_A.weight"] = a.cpu().contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = b.cpu().contiguous()
    rank = config.r * (2 if config.method == "lora_ga" else 1)
    return tensors, LoraConfig(
        r=rank,
        lora_alpha=config.scaling * rank,  # PEFT's s = lora_alpha / r: the same s, rsLoRA or not
        target_modules=sorted(layers),  # full names: exactly the adapted layers
        fan_in_fan_out=any(isinstance(layer.base_layer, Conv1D) for layer in layers.values()),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _boft(config, layers) -> tuple[dict[str, torch.Tensor], object]:
    """PEFT's BOFT computes y = s * (W0 M^T x) + b with M = its butterfly product of Cayley blocks of
    `boft_R`, a per-output scale s (`boft_s`) and the bias left alone. M is the transpose of
    `ButterflyOrthogonal.matrix()` for the same skew parameters (docs/orthogonal.md), so an input-side govtune
    BOFT (y = W0 R x + b) is PEFT's with boft_R = skew and boft_s = 1, exactly. The output-side BOFT,
    y = R (W0 x + b), is not: R W0 = W0 M^T needs M^T = W0^+ R W0, no butterfly in general."""
    from peft import BOFTConfig

    if config.boft_side != "input":
        raise ValueError("this BOFT rotates the layers' outputs (boft_side='output': y = R (W0 x + b)); PEFT's "
                         "BOFT rotates their inputs (y = W0 R x + b), and the two agree only at R = I. Train with "
                         "AdapterConfig(method='boft', boft_side='input') for a PEFT-exportable BOFT, or export "
                         "the merged checkpoint (merge_and_unload(model) + save_pretrained)")
    conv = [name for name, layer in layers.items() if isinstance(layer.base_layer, Conv1D)]
    if conv:
        raise ValueError(f"PEFT's BOFT wraps nn.Linear and Conv2d, not transformers Conv1D ({conv[0]}, ...): "
                         f"export the merged checkpoint (merge_and_unload + save_pretrained) instead")
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        tensors[f"base_model.model.{name}.boft_R"] = layer.boft_R.skew.detach().cpu().contiguous()
        tensors[f"base_model.model.{name}.boft_s"] = torch.ones(layer.out_features, 1,
                                                                dtype=layer.boft_R.skew.dtype)
    # PEFT builds boft_R with one factor wherever its CUDA extension (fbd_cuda) does not build, every CPU
    # included: an export with boft_factors > 1 loads only where that extension runs.
    return tensors, BOFTConfig(
        boft_block_size=config.boft_block_size,
        boft_n_butterfly_factor=config.boft_factors,
        target_modules=sorted(layers),
        boft_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
