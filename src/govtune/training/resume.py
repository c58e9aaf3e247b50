"""Continuing an interrupted run from its last epoch checkpoint, and the error that stops a diverged one."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from govtune.training.callbacks import EpochInfo, History
from govtune.training.checkpoint import CorruptCheckpoint, latest_checkpoint, load_checkpoint
from govtune.training.config import TrainingDiverged
from govtune.training.mixer import ValidationMixer


class ResumeMismatch(ValueError):
    """The checkpoint to resume from was written by a run with other settings, or cannot be read; nothing was
    loaded."""


def resume_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, run_key: dict,
                      history: History, mixer: ValidationMixer | None = None) -> tuple[int, int, Path]:
    """Load the checkpoint at `path` into model, optimiser, scheduler and the learned mixer's optimiser;
    restore the log and the RNG. Returns (steps done, first epoch to run, checkpoint path)."""

    def same_run(_: Path, state: dict) -> None:
        saved = state.get("run") or {}
        differ = [k for k in run_key if saved.get(k) != run_key[k]]
        if differ:
            raise ResumeMismatch(
                f"cannot resume from {path}: it was written by a run with other settings "
                f"({', '.join(f'{k} {saved.get(k)} != {run_key[k]}' for k in differ)}); "
                f"use the same settings, or remove {path.parent} to start over")
        if (mixer is None) != ("mixer" not in state):
            raise ResumeMismatch(
                f"cannot resume from {path}: it was written {'with' if mixer is None else 'without'} a learned "
                f"mixer (lam_schedule 'learned') and this run is the other way round; use the same adapter "
                f"config, or remove {path.parent} to start over")

    try:
        state = load_checkpoint(path, model, optimizer, scheduler, check=same_run)
    except CorruptCheckpoint as e:  # a file cut short: nothing was loaded
        raise ResumeMismatch(f"cannot resume from {path}: {e}") from None
    if mixer is not None:
        mixer.load_state_dict(state["mixer"])
    restored = History.from_dict(state["history"])
    history.steps, history.epochs = restored.steps, restored.epochs
    history.initial_val_loss = restored.initial_val_loss
    history.epochs.append(EpochInfo(**{**state["epoch_info"], "checkpoint": str(path)}))
    torch.set_rng_state(state["rng"])
    return int(state["step"]), int(state["epoch"]) + 1, path


def diverged(what: str, value: float, step: int, epoch: int, out_dir: Path | None,
             scheduler) -> TrainingDiverged:
    kept = latest_checkpoint(out_dir) if out_dir is not None else None
    where = f"the last good checkpoint is kept at {kept}" if kept else "no checkpoint was written yet"
    lr = scheduler.get_last_lr()[0]
    return TrainingDiverged(
        f"training stopped: the {what} is {value} at step {step} (epoch {epoch}); {where}. "
        f"Lower lr (now {lr:.3g}), raise warmup_ratio, or set max_grad_norm.", step, kept)
