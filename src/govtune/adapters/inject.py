"""Putting adapters into a model and taking them out: target matching, freezing, merge_and_unload."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from govtune.adapters.base import SUPPORTED_LAYERS, AdapterLayer, layer_fingerprint, tensor_fingerprint
from govtune.adapters.config import DEFAULT_TARGETS, AdapterConfig
from govtune.adapters.lora_ga import GradientCache, estimate_gradients
from govtune.adapters.registry import GRADIENT_INIT, layer_class
from govtune.constants import ADAPTER_STATE_ATTR
from govtune.quantization import model_scheme

# Set on the model by inject(): {"config": AdapterConfig, "fingerprint": str}.
STATE_ATTR = ADAPTER_STATE_ATTR
# Fallback names for models whose type has no entry in DEFAULT_TARGETS.
_COMMON_ATTENTION = (["q_proj", "k_proj", "v_proj", "o_proj"], ["query_key_value"], ["c_attn"],
                     ["query", "key", "value"])


def adapter_state(model: nn.Module) -> dict[str, Any] | None:
    return getattr(model, STATE_ATTR, None)


def adapter_layers(model: nn.Module) -> dict[str, AdapterLayer]:
    """Every adapter layer in the model by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLayer)}


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)]


def _examples(model: nn.Module) -> str:
    names = _linear_names(model)
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    sample = ", ".join(names[:3])
    return f"its linear layers are named {leaves[:20]} (e.g. {sample})"


def default_targets(model: nn.Module) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in DEFAULT_TARGETS:
        return DEFAULT_TARGETS[model_type]
    leaves = {n.rsplit(".", 1)[-1] for n in _linear_names(model)}
    for group in _COMMON_ATTENTION:
        if set(group) <= leaves:
            return group
    raise ValueError(f"no default target modules for model type {model_type!r}: set "
                     f"AdapterConfig.target_modules; {_examples(model)}")


def _matches(name: str, targets: list[str] | str) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def resolve_targets(model: nn.Module, config: AdapterConfig) -> dict[str, nn.Module]:
    """The modules `config.target_modules` names, checked to be nn.Linear or Conv1D."""
    targets = config.target_modules if config.target_modules is not None else default_targets(model)
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name or not _matches(name, targets):
            continue
        if isinstance(module, AdapterLayer):
            raise ValueError(f"{name} already holds a {module.method} adapter: call merge_and_unload(model) "
                             f"first or start from a fresh model")
        if not isinstance(module, SUPPORTED_LAYERS):
            raise ValueError(f"target_modules {targets!r} matches {name}, a {type(module).__name__}; adapters "
                             f"wrap nn.Linear or Conv1D layers: name those instead ({_examples(model)})")
        found[name] = module
    if not found:
        raise ValueError(f"target_modules {targets!r} match no module of this {type(model).__name__}; "
                         f"{_examples(model)}")
    return found


def fingerprint(layers: Mapping[str, nn.Module]) -> str:
    """Fingerprint of the original base weights of the given layers (adapter layers report the weights
    they wrapped before any change, so a LoRA-GA offset does not alter it)."""
    h = hashlib.sha256()
    for name in sorted(layers):
        m = layers[name]
        fp = m.base_fingerprint if isinstance(m, AdapterLayer) else layer_fingerprint(m)
        h.update(f"{name}={fp};".encode())
    return h.hexdigest()[:24]


def full_fingerprint(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}={tensor_fingerprint(p)};".encode())
    return h.hexdigest()[:24]


def inject(model: nn.Module, config: AdapterConfig, calibration: Iterable[Mapping] | None = None, *,
           progress: bool = True, gradient_cache: GradientCache | None = None) -> nn.Module:
    """Wrap every target layer of `model` (in place) in the adapter of `config.method` and freeze
    everything else; `full` makes every weight trainable instead.

    calibration: batches (dicts of tensors with `labels`) for the LoRA-GA gradient estimate; required for
    lora_ga and hybrid, ignored otherwise. gradient_cache: where an earlier identical estimate may be found
    (`GradientCache`: same weights, same batches), e.g. a study's, shared by its cells."""
    if not isinstance(config, AdapterConfig):
        raise ValueError(f"config must be an AdapterConfig, got {type(config).__name__}")
    if config.method in GRADIENT_INIT and calibration is None:
        raise ValueError(f"method {config.method!r} initialises its LoRA branch from the loss gradient: pass "
                         f"calibration= an iterable of batches with labels (e.g. the first training batches)")
    return _inject(model, config, calibration, progress=progress, gradient_cache=gradient_cache)


def _inject(model: nn.Module, config: AdapterConfig, calibration: Iterable[Mapping] | None, *,
            progress: bool = True, gradient_cache: GradientCache | None = None) -> nn.Module:
    """inject() without the calibration requirement: load_adapter builds the layers, then loads A0, B0."""
    if adapter_state(model) is not None:
        raise ValueError("this model already has adapters: call merge_and_unload(model) first, or start from a "
                         "fresh model")
    if config.method == "full":
        if model_scheme(model) is not None:
            raise ValueError(f"method 'full' trains every weight, and this base is quantised "
                             f"({model_scheme(model)}): load it without quantize, or use an adapter method")
        for p in model.parameters():
            p.requires_grad_(True)
        setattr(model, STATE_ATTR, {"config": config, "fingerprint": full_fingerprint(model)})
        return model

    targets = resolve_targets(model, config)
    cls = layer_class(config.method)
    # Build every layer before touching the model: a shape error on the last layer leaves it unchanged.
    layers = {name: cls(module, config, name) for name, module in targets.items()}
    for p in model.parameters():  # the new adapter weights are not installed yet, so they stay trainable
        p.requires_grad_(False)
    grads = None
    if config.method in GRADIENT_INIT and calibration is not None:
        estimate = gradient_cache.estimate if gradient_cache is not None else estimate_gradients
        grads = estimate(model, targets, calibration, config.ga_batches, progress=progress)
    for name, layer in layers.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer)
        if grads is not None:
            layer.init_from_gradient(grads.pop(name))  # type: ignore[attr-defined]
    setattr(model, STATE_ATTR, {"config": config, "fingerprint": fingerprint(layers)})
    return model


def merge_adapters(model: nn.Module) -> None:
    """Fold every adapter into its base weights (the wrappers stay; `unmerge_adapters` undoes it)."""
    for layer in adapter_layers(model).values():
        if not layer.merged:
            layer.merge()


def unmerge_adapters(model: nn.Module) -> None:
    for layer in adapter_layers(model).values():
        if layer.merged:
            layer.unmerge()


@contextmanager
def merged_for_inference(model: nn.Module) -> Iterator[nn.Module]:
    """The model with its adapters folded into the base weights for the duration of the block: evaluation
    and generation then run the plain layers, at the base model's cost. Unmerged, a BOFT layer rebuilds its
    rotation and R W0 at every forward, which for greedy decoding is every new token (the demo's BOFT run
    generated FLORES ~1.5x slower than the base model). On exit the base weights get back their exact
    values from copies (not `unmerge`'s inverse, which is exact only up to rounding), so a save or a
    fingerprint after the block sees the same bytes. Layers on a quantised base stay unmerged: merging
    would dequantise them. Outputs equal the unmerged model's up to float rounding."""
    layers = [layer for layer in adapter_layers(model).values() if not layer.merged and not layer.quantized]
    saved = [(layer.weight.detach().clone(), None if layer.bias is None else layer.bias.detach().clone())
             for layer in layers]
    try:
        for layer in layers:
            layer.merge()
        yield model
    finally:
        with torch.no_grad():
            for layer, (w, b) in zip(layers, saved):
                if layer.merged:
                    layer.weight.copy_(w)
                    if b is not None:
                        layer.bias.copy_(b)
                    layer.merged = False


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every adapter and put the plain base layers back: the result is an ordinary transformers model
    (save it with `save_pretrained`). Parameters keep their requires_grad flags."""
    for name, layer in adapter_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.base_layer)
    if hasattr(model, STATE_ATTR):
        delattr(model, STATE_ATTR)
    return model


def trainable_parameters(model: nn.Module) -> int:
    """Number of tunable parameters: those requiring grad (Riemannian-trained ones included) and the learned
    mixer's phi (frozen to the training loss, trained on the validation loss)."""
    mixer = {id(m.mixer_phi) for m in adapter_layers(model).values() if hasattr(m, "mixer_phi")}
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if (p.requires_grad or id(p) in mixer) and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
