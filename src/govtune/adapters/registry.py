"""Method name -> adapter layer class. `full` has no layer: every weight of the model trains."""

from __future__ import annotations

from govtune.adapters.base import AdapterLayer
from govtune.adapters.boft import BoftLayer
from govtune.adapters.hybrid import HybridLayer
from govtune.adapters.lora import LoraLayer
from govtune.adapters.lora_ga import LoraGALayer
from govtune.adapters.unitary import UnitaryFullLayer, UnitaryLayer

LAYERS: dict[str, type[AdapterLayer]] = {
    "lora": LoraLayer,
    "lora_ga": LoraGALayer,
    "boft": BoftLayer,
    "unitary": UnitaryLayer,
    "unitary_full": UnitaryFullLayer,
    "hybrid": HybridLayer,
}

# Methods whose LoRA branch starts from the full-weight gradient: inject() needs calibration batches.
GRADIENT_INIT = ("lora_ga", "hybrid")


def layer_class(method: str) -> type[AdapterLayer]:
    if method not in LAYERS:
        raise ValueError(f"no adapter layer for method {method!r}: use one of {', '.join(LAYERS)} "
                         f"(or 'full' to train every weight)")
    return LAYERS[method]
