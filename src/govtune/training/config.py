"""What a training run is given and what it returns: TrainConfig (checked on construction), TrainResult,
TrainingDiverged, and the accelerator every process of a run shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from govtune.constants import MIXED_PRECISION, check_lr_branches
from govtune.launch import cpu_processes
from govtune.training.callbacks import History
from govtune.training.footprint import Footprint

# transformers' scheduler name for each of govtune's schedule names (govtune.constants.LR_SCHEDULES)
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


class TrainingDiverged(RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; `.step` and `.checkpoint` say where and what is kept."""

    def __init__(self, message: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    schedule: str = "linear"  # linear or cosine decay after warm-up, or constant
    max_grad_norm: float | None = 1.0  # None = no clipping
    max_length: int = 256
    mixed_precision: str = "auto"  # auto = bf16 (fp16 without bf16) on CUDA, none on the CPU
    seed: int = 0
    timing_warmup_steps: int = 2  # steps left out of the mean step time (allocator, kernel warm-up)
    checkpoints: bool = True
    # Continue from the latest checkpoint under out_dir when there is one (epochs it covers are not run
    # again); the run must have the same data, seed, epochs and batch settings, or it is refused.
    resume: bool = False
    progress: bool = True
    # The hybrid's branches at rates of their own, e.g. {"lora_ga": 2e-5, "boft": 5e-4}; a branch left out
    # trains at lr (govtune.training.optim).
    lr_branches: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("epochs, batch_size and grad_accum must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError("max_grad_norm must be > 0, or None for no clipping")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.lr_branches is not None:
            self.lr_branches = check_lr_branches(self.lr_branches, "TrainConfig.lr_branches")


@dataclass
class TrainResult:
    history: History
    footprint: Footprint
    checkpoint: Path | None
    steps: int
    extra: dict = field(default_factory=dict)


def resolve_mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"  # CPU autocast to bf16 is slower than fp32 on most CPUs


def make_accelerator(mixed_precision: str = "auto", grad_accum: int = 1) -> Accelerator:
    # cpu_processes: without it, processes `torchrun` starts on a CPU machine would each train alone
    return Accelerator(cpu=cpu_processes(), mixed_precision=resolve_mixed_precision(mixed_precision),
                       gradient_accumulation_steps=grad_accum)
