"""Training footprint: peak memory, mean step time after warm-up, tunable parameters.

Peak memory is the accelerator allocator's peak where there is one (CUDA, XPU, MPS). On the CPU it is the
process's peak resident set size during training: Linux lets a process reset its high-water mark
(`/proc/self/clear_refs` <- 5), so each run's peak is its own even when a grid runs many cells in one
process. RSS includes the model weights, the Python runtime and the data, not only the training state.
Before the reset, memory that earlier work freed is handed back to the OS (`release_free_memory`): glibc keeps
freed heap pages mapped (a previous cell's model: ~1.2 GB for Gemma 3 270M), so without it every later cell of
a grid started higher and its peak carried the cells before it (+~100 MB a cell, measured)."""

from __future__ import annotations

import ctypes
import gc
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass
class Footprint:
    peak_memory_mb: float | None
    step_time_s: float | None
    tunable_params_m: float
    memory_kind: str  # "cuda allocator", "cpu peak RSS (includes the model)", ...
    timed_steps: int

    def to_dict(self) -> dict:
        return asdict(self)


def release_free_memory() -> bool:
    """Collect garbage and return the heap's free pages to the OS (glibc's malloc_trim; True when it ran).
    Other C libraries have no such call and keep their own policy."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # no malloc_trim (macOS, musl); CDLL(None) on Windows
        return False
    trim(0)
    return True


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 ** 2 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class FootprintMeter:
    """`start()` before the first step, `step_done()` after each optimiser step, `result(tunable)` at the end."""

    def __init__(self, device: torch.device, warmup_steps: int = 2):
        self.device = device
        self.warmup_steps = warmup_steps
        self.step_times: list[float] = []
        self._t = 0.0
        self._rss_reset = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "xpu":
            torch.xpu.reset_peak_memory_stats(self.device)
        else:
            release_free_memory()
            self._rss_reset = _reset_rss_peak()
        self._t = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def step_begin(self) -> None:
        self._sync()
        self._t = time.perf_counter()

    def step_done(self) -> float:
        self._sync()
        dt = time.perf_counter() - self._t
        self.step_times.append(dt)
        return dt

    def peak_memory_mb(self) -> tuple[float | None, str]:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20, "cuda allocator peak"
        if self.device.type == "xpu":
            return torch.xpu.max_memory_allocated(self.device) / 2 ** 20, "xpu allocator peak"
        if self.device.type == "mps":
            return torch.mps.driver_allocated_memory() / 2 ** 20, "mps driver allocation (at end)"
        kind = "cpu peak RSS during training (includes the model)" if self._rss_reset else \
            "cpu peak RSS of the process (includes the model and earlier work)"
        return _rss_peak_mb(), kind

    def result(self, tunable_params: int) -> Footprint:
        timed = self.step_times[self.warmup_steps:] or self.step_times
        mem, kind = self.peak_memory_mb()
        return Footprint(peak_memory_mb=round(mem, 1) if mem is not None else None,
                         step_time_s=round(sum(timed) / len(timed), 4) if timed else None,
                         tunable_params_m=round(tunable_params / 1e6, 4), memory_kind=kind,
                         timed_steps=len(timed))
