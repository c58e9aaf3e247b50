"""Saving and loading adapter weights alone: `adapter_model.safetensors` + `adapter_config.json`.

The JSON holds the AdapterConfig and a fingerprint of the ORIGINAL base weights of the adapted layers, so
an adapter loaded onto a different base model fails with a clear error instead of silently producing a
different model. For LoRA-GA the saved state includes (A0, B0): loading re-applies the offset
W0 <- W0 - s B0 A0 to the original base. `full` saves every weight of the model.

Every other trainable parameter outside the adapter layers (a classification head trained with the adapter,
`govtune.heads`) is saved too, under its own name, and listed in the JSON as `modules_to_save` (PEFT's name
for such modules); a head's classes are recorded as `head.labels`, so the model can be rebuilt to load it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from govtune import __version__
from govtune.adapters.config import AdapterConfig
from govtune.adapters.inject import (_inject, adapter_layers, adapter_state, fingerprint, full_fingerprint,
                                     resolve_targets)
from govtune.atomic import atomic_write_with
from govtune.heads import HEAD, head_labels, head_parameters

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"


def _adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in adapter_layers(model).items():
        for key, t in layer.adapter_state_dict().items():
            out[f"{name}.{key}"] = t.detach().cpu().contiguous()
    return out


def saved_modules(model: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters outside every adapter layer, by name (a classification head's `score.weight`)."""
    inside = {id(p) for layer in adapter_layers(model).values() for p in layer.parameters()}
    return {n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in inside}


def _head_meta(model: nn.Module, saved: dict[str, nn.Parameter]) -> dict:
    heads = {id(p) for p in head_parameters(model)}
    if not any(id(p) in heads for p in saved.values()):
        return {}
    return {"head": {"module": HEAD, "labels": head_labels(model)}}


def _full_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied weight once; safetensors refuses shared storage.
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters()}


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the adapter of `model` to directory `path` (created if needed); returns the directory."""
    state = adapter_state(model)
    if state is None:
        raise ValueError("this model has no adapters to save: call inject(model, config) first (or, for a "
                         "merged model, use model.save_pretrained)")
    config: AdapterConfig = state["config"]
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = _full_tensors(model) if config.method == "full" else _adapter_tensors(model)
    saved = {} if config.method == "full" else saved_modules(model)
    tensors.update({n: p.detach().cpu().contiguous() for n, p in saved.items()})
    meta = {
        "format": "govtune-adapter",
        "govtune_version": __version__,
        "config": config.to_dict(),
        "base_fingerprint": state["fingerprint"],
        "base_model": str(getattr(getattr(model, "config", None), "name_or_path", "") or ""),
        "layers": sorted(adapter_layers(model)),
        **({"modules_to_save": sorted({n.rpartition(".")[0] for n in saved}), "saved_parameters": sorted(saved),
            **_head_meta(model, saved)} if saved else {}),
    }
    atomic_write_with(out / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write_with(out / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return out


class CorruptAdapter(ValueError):
    """An adapter file is cut short or damaged; nothing was loaded from it."""


def read_adapter_config(path: str | os.PathLike) -> tuple[AdapterConfig, dict]:
    d = Path(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name} not found: pass the directory written by save_adapter(model, "
                                    f"path)")
    try:
        meta = json.loads((d / CONFIG_NAME).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptAdapter(f"{d / CONFIG_NAME} cannot be read: it is cut short or not JSON ({e}); save the "
                             f"adapter again") from None
    if meta.get("format") != "govtune-adapter":
        raise ValueError(f"{d / CONFIG_NAME} is not a govtune adapter (a PEFT adapter loads with "
                         f"peft.PeftModel.from_pretrained)")
    return AdapterConfig.from_dict(meta["config"]), meta


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an adapter saved by `save_adapter` into `model` (in place), injecting the adapter layers if the
    model has none. The model must be the base the adapter was trained on."""
    config, meta = read_adapter_config(path)
    state = adapter_state(model)
    if state is None:
        ours = full_fingerprint(model) if config.method == "full" else fingerprint(resolve_targets(model, config))
    else:
        if state["config"].to_dict() != config.to_dict():
            raise ValueError(f"this model already has a {state['config'].method} adapter with a different "
                             f"config than {path}: load into a fresh base model")
        ours = state["fingerprint"]
    if ours != meta["base_fingerprint"]:
        raise ValueError(f"the adapter in {path} was trained on a different base model "
                         f"({meta.get('base_model') or 'unknown'}, fingerprint {meta['base_fingerprint']}) than "
                         f"this one (fingerprint {ours}): load the base model it was saved from")
    try:
        tensors = load_file(str(Path(path) / WEIGHTS_NAME))
    except Exception as e:  # safetensors' SafetensorError (no OSError): a file cut short, or another format
        raise CorruptAdapter(f"{Path(path) / WEIGHTS_NAME} cannot be read: {e}. The file is cut short or damaged; "
                         f"save the adapter again (a study's `govtune run ... --resume` redoes the run it "
                         f"belongs to)") from None
    saved = meta.get("saved_parameters", [])
    if any(n not in tensors for n in saved):
        raise CorruptAdapter(f"{Path(path) / WEIGHTS_NAME} lacks parameters its {CONFIG_NAME} lists "
                             f"({[n for n in saved if n not in tensors][:3]}): save the adapter again")
    params = dict(model.named_parameters())
    lacking = [n for n in saved if n not in params or params[n].shape != tensors[n].shape]
    if lacking:
        head = meta.get("head")
        fix = (f"build the model with its head first, govtune.heads.with_classifier_head(model, tokenizer, "
               f"{head['labels']}) (`govtune eval --adapter` does), then load" if head else
               "load it onto the model it was trained with")
        raise ValueError(f"{path} holds trained parameters {lacking[:3]} besides the adapter that this "
                         f"{type(model).__name__} has not (or in another shape): {fix}")
    if state is None:
        _inject(model, config, None, progress=False)
    with torch.no_grad():
        for n in saved:
            params[n].copy_(tensors.pop(n).to(params[n].device))
    if config.method == "full":
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if k in dict(model.named_parameters())]
        if missing or unexpected:
            raise ValueError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model
    layers = adapter_layers(model)
    per_layer: dict[str, dict[str, torch.Tensor]] = {name: {} for name in layers}
    for key, t in tensors.items():
        owner = next((n for n in layers if key.startswith(n + ".")), None)
        if owner is None:
            raise ValueError(f"{path} holds {key!r}, which belongs to no adapter layer of this model")
        per_layer[owner][key[len(owner) + 1:]] = t
    for name, layer in layers.items():
        dev = layer.base_layer.weight.device
        layer.load_adapter_state_dict({k: v.to(dev) for k, v in per_layer[name].items()})
    return model
