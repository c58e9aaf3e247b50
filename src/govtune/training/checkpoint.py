"""Checkpoints: adapter weights (govtune.save_adapter) plus optimiser, scheduler and step state.

Each checkpoint is written into a temporary directory and renamed into place (`checkpoint-step{N}`); only
then does the `latest` pointer (itself written atomically) move to it and the older one get removed. A run
killed or diverging mid-write therefore always leaves the last good checkpoint intact.

Not accelerate's `save_state`/`load_state`: they write the whole model's state dict (the frozen base model
too, every epoch) straight into the target directory, not atomically; keeping only the adapter, refusing
another run's checkpoint before anything is loaded (`check`, which ResumeMismatch relies on) and carrying
the log would each need a pre-hook of their own, more code than this module."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from govtune.adapters import AdapterLayer, load_adapter, save_adapter
from govtune.adapters.io import CorruptAdapter
from govtune.atomic import atomic_write_dir, atomic_write_text

LATEST = "latest"
STATE_FILE = "trainer_state.pt"
WEIGHTS_DIR = "adapter"


class CorruptCheckpoint(ValueError):
    """A checkpoint file cannot be read (cut short, or not what its name says); nothing was loaded."""


def save_weights(model: nn.Module, path: Path) -> None:
    """The tunable state: the adapter files when the model carries govtune adapters, else (full
    fine-tuning or a hand-made model) every parameter that requires grad, as safetensors."""
    if any(isinstance(m, AdapterLayer) for m in model.modules()):
        save_adapter(model, path)
        return
    path.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(tensors, str(path / "trainable.safetensors"))


def load_weights(model: nn.Module, path: Path) -> None:
    if (path / "trainable.safetensors").exists():
        try:
            tensors = load_file(str(path / "trainable.safetensors"))
        except Exception as e:  # safetensors' SafetensorError
            raise CorruptCheckpoint(f"{path / 'trainable.safetensors'} cannot be read ({e})") from None
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in tensors.items():
                params[n].copy_(t)
        return
    try:
        load_adapter(model, path)
    except CorruptAdapter as e:
        raise CorruptCheckpoint(str(e)) from None


def save_checkpoint(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: dict[str, Any]) -> Path:
    directory = Path(directory)
    name = f"checkpoint-step{state['step']}"

    def write(tmp: Path) -> None:
        save_weights(model, tmp / WEIGHTS_DIR)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **state},
                   tmp / STATE_FILE)

    path = atomic_write_dir(directory / name, write)
    atomic_write_text(directory / LATEST, name)
    for old in directory.glob("checkpoint-step*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    pointer = Path(directory) / LATEST
    if not pointer.exists():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_checkpoint(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, check: Callable[[Path, dict[str, Any]], None] | None = None
                    ) -> dict[str, Any]:
    """Restore the latest checkpoint under `directory` (or `directory` itself if it is one) into model
    (and optimiser/scheduler when given); returns the saved state (step, epoch, ...). `check(path, state)`
    runs before anything is loaded: raising there leaves the model untouched."""
    directory = Path(directory)
    path = directory if (directory / STATE_FILE).exists() else latest_checkpoint(directory)
    if path is None:
        raise FileNotFoundError(f"no checkpoint under {directory} (looked for {LATEST} and {STATE_FILE})")
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as e:  # a file cut short fails in pickle, zipfile or torch itself, each its own way
        raise CorruptCheckpoint(f"checkpoint file {path / STATE_FILE} cannot be read ({e.__class__.__name__}: "
                                f"{e}); remove {path.parent} to start the run over") from None
    if check is not None:
        check(path, state)
    load_weights(model, path / WEIGHTS_DIR)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    return {k: v for k, v in state.items() if k not in ("optimizer", "scheduler")}
