"""Adapters: LoRA, LoRA-GA, BOFT, unitary (structured and dense) and the hybrid LoRA-GA + BOFT, each a
wrapper around a frozen nn.Linear (or Conv1D). One way in:

    model = inject(model, AdapterConfig(method="hybrid"), calibration=batches)
    ... train (call after_backward(model, progress) after each backward; lam_schedule="learned" also
        steps phi on validation batches: mixer_gradient + MixerOptimizer) ...
    save_adapter(model, "out/adapter");  merged = merge_and_unload(model)
"""

from govtune.adapters.base import AdapterLayer
from govtune.adapters.config import DEFAULT_TARGETS, METHODS, AdapterConfig
from govtune.adapters.gradients import grad_norm
from govtune.adapters.hooks import (after_backward, hybrid_layers, lam_history, mixing, optimizer_parameters,
                                    riemannian_modules)
from govtune.adapters.inject import (adapter_layers, inject, merge_adapters, merge_and_unload, merged_for_inference,
                                     resolve_targets, trainable_parameters, unmerge_adapters)
from govtune.adapters.io import load_adapter, save_adapter
from govtune.adapters.mixer import MixerOptimizer, learned_layers, mixer_gradient, mixer_parameters, phi_values
from govtune.adapters.peft_export import export_peft

__all__ = [
    "AdapterConfig", "AdapterLayer", "DEFAULT_TARGETS", "METHODS",
    "inject", "merge_and_unload", "merge_adapters", "merged_for_inference", "unmerge_adapters", "adapter_layers",
    "resolve_targets",
    "save_adapter", "load_adapter", "export_peft", "trainable_parameters",
    "after_backward", "grad_norm", "mixing", "lam_history", "riemannian_modules", "optimizer_parameters", "hybrid_layers",
    "learned_layers", "mixer_parameters", "mixer_gradient", "phi_values", "MixerOptimizer",
]
