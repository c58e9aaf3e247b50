"""`AdapterLayer`: what every adapter shares. It wraps a frozen `base_layer` (an `nn.Linear`, or a
`transformers` Conv1D whose weight is stored transposed) and owns only its adapter weights. Each method
defines its own forward, merge and unmerge: BOFT and unitary merge by multiplication, LoRA by addition, so
nothing here assumes `W0 + dW`."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D  # GPT-2 style projections: weight is d_in x d_out

from govtune.adapters.config import AdapterConfig
from govtune.quantization import (compute_dtype, dequantize_layer, dequantized_weight, float_fingerprint,
                                  is_quantized, tensor_fingerprint, warn_dequantized_merge)

SUPPORTED_LAYERS = (nn.Linear, Conv1D)


def layer_features(layer: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of a Linear or Conv1D."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    return layer.weight.shape[0], layer.weight.shape[1]


def weight_out_in(layer: nn.Module) -> torch.Tensor:
    """The weight as a (d_out, d_in) view; writes into it change the layer."""
    return layer.weight if isinstance(layer, nn.Linear) else layer.weight.T


def layer_fingerprint(layer: nn.Module) -> str:
    """Fingerprint of a layer's weight; for a quantised layer, of the float weight it was made from, so an
    adapter trained on a quantised base loads onto the float checkpoint (and back)."""
    return float_fingerprint(layer) or tensor_fingerprint(layer.weight)


class AdapterLayer(nn.Module, ABC):
    """Base for every adapter layer. Subclasses implement `adapted_forward`, `_merge` and `_unmerge`."""

    method: str = ""

    def __init__(self, base_layer: nn.Module, config: AdapterConfig, name: str = ""):
        super().__init__()
        if not isinstance(base_layer, SUPPORTED_LAYERS):
            raise ValueError(f"{name or 'layer'} is a {type(base_layer).__name__}; adapters wrap nn.Linear or "
                             f"transformers Conv1D: choose target_modules that name such layers")
        self.base_layer = base_layer
        self.config = config
        self.name = name
        self.in_features, self.out_features = layer_features(base_layer)
        self.scaling = config.scaling
        self.merged = False
        # Taken before any method changes the base (LoRA-GA offsets it): saved adapters name this base.
        self.base_fingerprint = layer_fingerprint(base_layer)

    # -- views of the frozen base -------------------------------------------------------------------
    @property
    def quantized(self) -> bool:
        """Whether the frozen base is a quantised layer (govtune.quantization); a merge dequantises it."""
        return is_quantized(self.base_layer)

    @property
    def weight(self) -> torch.Tensor:
        """Base weight as (d_out, d_in): a writable view of a float base, the dequantised weight (a new
        tensor, rebuilt on each call) of a quantised one."""
        if self.quantized:
            return dequantized_weight(self.base_layer)
        return weight_out_in(self.base_layer)

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def compute_dtype(self) -> torch.dtype:
        """The float dtype of the base's computation (a quantised weight's storage dtype is an integer)."""
        return compute_dtype(self.base_layer)

    def _param_like(self, *shape: int) -> torch.Tensor:
        return torch.empty(*shape, device=self.base_layer.weight.device, dtype=self.compute_dtype)

    # -- forward, merge -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        return self.adapted_forward(x)

    @abstractmethod
    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the adapted layer with the adapter applied on the fly."""

    @abstractmethod
    def _merge(self, w: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W, b) of the merged plain layer from the current base (W, b), in float32."""

    @abstractmethod
    def _unmerge(self, w: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inverse of `_merge`."""

    @torch.no_grad()
    def _rewrite_base(self, fn) -> None:
        if self.quantized:  # a quantised weight cannot take W + dW: the layer becomes float, and says so
            warn_dequantized_merge()
            self.base_layer = dequantize_layer(self.base_layer)
        w = self.weight
        b = self.bias
        new_w, new_b = fn(w.float(), None if b is None else b.float())
        w.copy_(new_w.to(w.dtype))
        if b is not None and new_b is not None:
            b.copy_(new_b.to(b.dtype))

    def merge(self) -> None:
        """Fold the adapter into the base weights; forward is then the plain base layer."""
        if self.merged:
            raise ValueError(f"{self.name}: adapter already merged; call unmerge() first")
        self._rewrite_base(self._merge)
        self.merged = True

    def unmerge(self) -> None:
        """Undo `merge` (exactly up to float rounding)."""
        if not self.merged:
            raise ValueError(f"{self.name}: adapter is not merged")
        self._rewrite_base(self._unmerge)
        self.merged = False

    # -- adapter state ------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter parameters and persistent buffers, without the frozen base."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("base_layer.")}

    def check_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        """Raise a ValueError naming the difference unless `state` fits this layer."""
        if self.merged:
            raise ValueError(f"{self.name}: cannot load into a merged adapter; unmerge it first")
        expected = set(self.adapter_state_dict())
        if set(state) != expected:
            raise ValueError(f"{self.name}: saved adapter has keys {sorted(state)}, this layer expects "
                             f"{sorted(expected)}: the adapter was saved with a different method or config")
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(f"{self.name}.{k}: saved shape {tuple(v.shape)} != {tuple(own[k].shape)}; "
                                 f"the adapter was saved with a different r, block size or model")

    @torch.no_grad()
    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.check_adapter_state(state)
        own = dict(self.named_parameters()) | dict(self.named_buffers())
        for k, v in state.items():
            own[k].copy_(v)

    def extra_repr(self) -> str:
        return f"method={self.method}, in={self.in_features}, out={self.out_features}, merged={self.merged}"
