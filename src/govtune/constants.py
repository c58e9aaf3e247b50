"""Names shared by the pillars and the study config, in one torch-free module: importing it costs nothing, so
the config layer can validate names without loading the adapter or training code."""

# Adapter methods (govtune.adapters.AdapterConfig.method).
METHODS = ("full", "lora", "lora_ga", "boft", "unitary", "unitary_full", "hybrid")
# Learning-rate schedules after warm-up (govtune.training.TrainConfig.schedule).
LR_SCHEDULES = ("linear", "cosine", "constant")
# Mixed precision: auto = bf16 (fp16 without bf16) on CUDA, none on the CPU.
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
