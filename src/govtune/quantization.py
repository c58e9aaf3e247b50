"""Quantised frozen bases: `quantize_model(model, scheme)` replaces the model's linear layers (all but the
output head) by quantised ones, and `dequantized_weight(layer)` gives back the float weight a quantised layer
computes with, for the adapters that read W0 (BOFT and the hybrid rotate it, LoRA-GA's estimate is a
gradient at it, merging writes it).

Schemes and the libraries that run them:
- `int8`: torchao's int8 weight-only (`Int8WeightOnlyConfig`: row-wise absmax int8 weights), on a CPU and
  on CUDA. Its forward is x W_deq^T in the activations' own precision, in training as in evaluation.
- `int4`: torchao's int4 weight-only (`Int4WeightOnlyConfig`, groups of 128), whose kernels need a CUDA GPU
  and torchao's `mslk` package.
- `nf4`: bitsandbytes `Linear4bit(quant_type="nf4")` (QLoRA's 4-bit NormalFloat, blocks of 64), on a CPU
  (bitsandbytes >= 0.48) and on CUDA; its forward dequantises and multiplies, x W_deq^T.
Why not bitsandbytes' 8-bit `Linear8bitLt` for int8: with gradients enabled it is LLM.int8(), which casts
the activations to float16 and quantises them too (measured on this CPU: its training-mode output moves by
3e-3 from its own evaluation-mode output on the tiny test model), so the base a rotation adapter sees
(x W_deq^T) is not the base the layer computes. torchao's CPU int4 (`IntxWeightOnlyConfig`) keeps each 4-bit
value in a byte, no smaller than int8, so it is not offered as int4.

The layers are replaced after the float model is loaded (tiny test models and offline conversions are built
in memory, so one path serves every model): peak memory while loading is the float model's."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterable

import torch
from torch import nn

from govtune import library_logs

SCHEMES = ("int8", "int4", "nf4")
# The output head shares its weight with the input embeddings in most small models (Gemma, SmolLM2):
# quantising it would untie them. transformers' bitsandbytes integration leaves it in float too.
SKIP_MODULES = ("lm_head",)
FINGERPRINT_ATTR = "_govtune_float_fingerprint"
SCHEME_ATTR = "_govtune_quantize"


class QuantizationUnavailable(ValueError):
    """The scheme cannot run on this machine; the message names what is missing."""


def _bnb():
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise QuantizationUnavailable(
            f"quantize='nf4' needs bitsandbytes, which is not installed ({e}): pip install 'bitsandbytes>=0.48' "
            f"(it runs on a CPU and on CUDA)") from e
    return bnb


def check_scheme(scheme: str, device: torch.device | str = "cpu") -> None:
    """Raise unless `scheme` is known and runs here: a 128 x 128 layer is quantised and run on `device`,
    so a missing kernel shows now, with its name, and not in the middle of a study."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantize scheme {scheme!r}: use one of {', '.join(SCHEMES)} (or none)")
    probe = nn.Linear(128, 128).to(device)
    try:
        layer = _quantized_linear(probe, scheme)
        with torch.no_grad():
            layer(torch.zeros(2, 128, device=device))
    except QuantizationUnavailable:
        raise
    except (ImportError, RuntimeError, NotImplementedError, AssertionError) as e:
        what = {"int4": "torchao's int4 weight-only kernel (a CUDA GPU and `pip install torchao mslk`)",
                "int8": "torchao's int8 weight-only kernel", "nf4": "bitsandbytes' 4-bit kernels"}[scheme]
        here = "; on a CPU use 'int8' or 'nf4'" if scheme == "int4" else ""
        raise QuantizationUnavailable(f"quantize={scheme!r} cannot run on {device}: it needs {what}, which "
                                      f"failed with {type(e).__name__}: {e}{here}") from e


def _torchao_linear(linear: nn.Linear, scheme: str) -> nn.Linear:
    try:
        logging.getLogger("torchao").setLevel(logging.ERROR)  # its import lists CUDA-only kernels it skipped
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
    except ImportError as e:
        raise QuantizationUnavailable(f"quantize={scheme!r} needs torchao, which is not installed ({e}): pip "
                                      f"install torchao") from e
    holder = nn.Sequential(nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                     device=linear.weight.device, dtype=linear.weight.dtype))
    holder[0].load_state_dict(linear.state_dict())
    quantize_(holder, Int8WeightOnlyConfig() if scheme == "int8" else Int4WeightOnlyConfig())
    return holder[0]


def _quantized_linear(linear: nn.Linear, scheme: str) -> nn.Module:
    """A quantised copy of a float nn.Linear on the same device."""
    library_logs.release()  # torchao's and bitsandbytes' start-up messages concern a quantised base: show them
    if scheme in ("int8", "int4"):
        layer = _torchao_linear(linear, scheme)
    else:
        bnb = _bnb()
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                  compute_dtype=linear.weight.dtype, quant_type="nf4")
        layer.load_state_dict({k: v.detach().cpu() for k, v in linear.state_dict().items()})
        layer = layer.to(linear.weight.device)  # bitsandbytes quantises the weight when it moves to a device
        # On a CPU with AVX512-BF16, bitsandbytes repacks the weight for a bf16 kernel in evaluation mode
        # without gradients: outputs then move by ~2e-3 from the training-mode x W_deq^T (measured on the
        # tiny test model), so evaluation would not score the model that was trained. Keep one kernel.
        layer.support_avx512bf16_for_cpu = False
    layer.requires_grad_(False)
    setattr(layer, SCHEME_ATTR, scheme)
    return layer


def tensor_fingerprint(w: torch.Tensor) -> str:
    """A short hash of a weight: its shape and up to 4096 evenly spaced entries rounded to bfloat16, so that
    the same checkpoint loaded in float32 or bfloat16 matches and a different base does not. Hashing a
    sample keeps this cheap on 7B models."""
    flat = w.detach().reshape(-1)
    step = max(1, flat.numel() // 4096)
    sample = flat[::step][:4096].to(torch.bfloat16).to(torch.float32).cpu().contiguous()
    h = hashlib.sha256(repr(tuple(w.shape)).encode())
    h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def quantize_model(model: nn.Module, scheme: str, skip: Iterable[str] = SKIP_MODULES) -> nn.Module:
    """Replace every nn.Linear of `model` (in place) whose name does not end with one of `skip` by its
    `scheme` quantisation; the model is frozen. Each quantised layer remembers the fingerprint of its float
    weight, so an adapter trained on the quantised base also loads onto the float checkpoint."""
    device = next(model.parameters()).device
    check_scheme(scheme, device)
    # an adapter layer (govtune.adapters.base.AdapterLayer) is known by its method: the adapters import this
    # module, so it cannot import them back
    if any(callable(getattr(m, "adapter_state_dict", None)) for m in model.modules()):
        raise ValueError("quantize the base before injecting adapters (the adapters wrap the quantised layers)")
    skip = tuple(skip)
    targets = [(name, m) for name, m in model.named_modules()
               if type(m) is nn.Linear and not any(name == s or name.endswith("." + s) for s in skip)]
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to quantise (outside {list(skip)})")
    for name, linear in targets:
        layer = _quantized_linear(linear, scheme)
        setattr(layer, FINGERPRINT_ATTR, tensor_fingerprint(linear.weight))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
    for p in model.parameters():
        p.requires_grad_(False)
    setattr(model, SCHEME_ATTR, scheme)
    return model


def model_scheme(model: nn.Module) -> str | None:
    """The scheme `quantize_model` applied to `model`, or None."""
    return getattr(model, SCHEME_ATTR, None)


def is_quantized(layer: nn.Module) -> bool:
    return hasattr(layer, SCHEME_ATTR)


def compute_dtype(layer: nn.Module) -> torch.dtype:
    """The floating dtype a (possibly quantised) linear layer computes in."""
    if not is_quantized(layer):
        return layer.weight.dtype
    if getattr(layer, "compute_dtype", None) is not None:  # bitsandbytes Linear4bit
        return layer.compute_dtype
    if layer.weight.dtype.is_floating_point:  # torchao tensors report their float dtype
        return layer.weight.dtype
    return layer.bias.dtype if layer.bias is not None else torch.float32


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """The (d_out, d_in) weight the layer multiplies by: the weight itself for a float layer (a view:
    writes change the layer), a new float tensor for a quantised one."""
    w = layer.weight
    if not is_quantized(layer):
        return w
    dtype = compute_dtype(layer)
    scheme = getattr(layer, SCHEME_ATTR)
    if scheme == "nf4":
        import bitsandbytes.functional as bf
        return bf.dequantize_4bit(w.data, w.quant_state).to(dtype)
    return w.dequantize().to(dtype)  # torchao tensor subclass


def float_fingerprint(layer: nn.Module) -> str | None:
    """Fingerprint of the float weight a quantised layer was made from (None for other layers)."""
    return getattr(layer, FINGERPRINT_ATTR, None)


@torch.no_grad()
def dequantize_layer(layer: nn.Module) -> nn.Linear:
    """A float nn.Linear with the quantised layer's dequantised weight (and its bias)."""
    w = dequantized_weight(layer)
    out = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device=w.device,
                    dtype=w.dtype)
    out.weight.copy_(w)
    if layer.bias is not None:
        out.bias.copy_(layer.bias)
    out.requires_grad_(False)
    return out


def warn_dequantized_merge() -> None:
    warnings.warn("merging adapters into a quantised base writes dequantised float weights: the merged layers "
                  "are plain float nn.Linear (W_deq + the adapter), a checkpoint of the float size; quantise it "
                  "again after loading if needed", UserWarning, stacklevel=3)
