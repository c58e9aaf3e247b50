"""Names shared by the pillars and the study config, in one torch-free module: importing it costs nothing, so
the config layer can validate names without loading the adapter or training code."""

# Adapter methods (govtune.adapters.AdapterConfig.method).
METHODS = ("full", "lora", "lora_ga", "boft", "unitary", "unitary_full", "hybrid")
# Learning-rate schedules after warm-up (govtune.training.TrainConfig.schedule).
LR_SCHEDULES = ("linear", "cosine", "constant")
# Mixed precision: auto = bf16 (fp16 without bf16) on CUDA, none on the CPU.
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")

# The hybrid's branches that can train at their own learning rate (TrainConfig / StudyConfig `lr_branches`).
# Its third trainable part, the learned mixer's phi, already has its own optimiser and rate (`mixer_lr`).
LR_BRANCHES = ("lora_ga", "boft")

# The attribute `govtune.adapters.inject` sets on a model it adapted. govtune.heads reads it to refuse a head
# built after the adapter; named here so that heads, which the adapters import, need not import them back.
ADAPTER_STATE_ATTR = "_govtune_adapter"

# The untuned baselines of a study, beside the adapter methods: the base model (shots = 0) and the base model
# with `incontext_shots` examples in every prompt. Here, not in the study config, because the report reads
# them from the results store without loading the runner.
BASE = "base"
INCONTEXT = "icl"
BASELINES = (BASE, INCONTEXT)
# The curation stages a study's `curation:` names (govtune.governance: C0 -> C1 -> C2); the report's ledger
# compares them in this order.
CURATION_STAGES = ("c0", "c1", "c2")


def check_lr_branches(rates: dict, where: str = "lr_branches") -> dict[str, float]:
    """`rates` as {branch: float}, or a ValueError naming the bad key or value and the fix."""
    import difflib  # here, not at the top: this module stays free of imports

    if not isinstance(rates, dict):
        raise ValueError(f"{where} must map hybrid branch names ({', '.join(LR_BRANCHES)}) to learning rates, "
                         f"e.g. {{lora_ga: 2.0e-5, boft: 5.0e-4}}; got {rates!r}")
    out = {}
    for key, value in rates.items():
        if key == "phi":
            raise ValueError(f"{where}: phi (the learned mixer) is trained by its own Adam, not by the adapter's "
                             f"optimiser; set its rate with the adapter option mixer_lr")
        if key not in LR_BRANCHES:
            close = difflib.get_close_matches(str(key), LR_BRANCHES, n=1, cutoff=0.4)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: unknown hybrid branch {key!r}{hint}; the branches are "
                             f"{', '.join(LR_BRANCHES)}")
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{key} must be a learning rate > 0, got {value!r}") from None
        if not 0 < rate < float("inf"):  # also refuses nan
            raise ValueError(f"{where}.{key} must be a finite learning rate > 0, got {value!r}")
        out[key] = rate
    return out
