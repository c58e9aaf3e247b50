"""What the loop records, and the hook for anything else that wants to watch a run.

`History` is the training log the report draws from: per step the loss, learning rate, gradient norm
(before clipping), every hybrid lam and, for the learned mixer, every phi and the mixer's validation loss;
per epoch the mean training loss, mean gradient norm, validation loss and wall time. `Callback` subclasses
see the same `StepInfo` / `EpochInfo` records as they are made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepInfo:
    step: int  # optimiser steps done, 1-based
    epoch: int  # 1-based
    loss: float
    lr: float
    grad_norm: float
    lam: dict[str, float]  # hybrid layer name -> lam used from the next forward on (empty otherwise)
    time_s: float
    phi: dict[str, float] = field(default_factory=dict)  # learned mixer: hybrid layer name -> phi after the step
    mixer_loss: float | None = None  # learned mixer: loss of the validation batch of this step's phi update


@dataclass
class EpochInfo:
    epoch: int
    train_loss: float
    grad_norm: float  # mean over the epoch's steps
    val_loss: float | None
    time_s: float
    checkpoint: str | None


class Callback:
    """Override what you need; the loop calls these on the main process."""

    def on_step_end(self, info: StepInfo) -> None:
        pass

    def on_epoch_end(self, info: EpochInfo) -> None:
        pass


@dataclass
class History(Callback):
    steps: list[StepInfo] = field(default_factory=list)
    epochs: list[EpochInfo] = field(default_factory=list)
    # Validation loss of the model as it starts (adapters at identity): epoch 0 of the curve, so that one
    # epoch of training still shows whether the loss fell.
    initial_val_loss: float | None = None

    def on_step_end(self, info: StepInfo) -> None:
        self.steps.append(info)

    def on_epoch_end(self, info: EpochInfo) -> None:
        self.epochs.append(info)

    def lam_trajectories(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for s in self.steps:
            for name, lam in s.lam.items():
                out.setdefault(name, []).append(lam)
        return out

    def lam_final(self) -> dict[str, float] | None:
        return dict(self.steps[-1].lam) if self.steps and self.steps[-1].lam else None

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """Flat (x, y) series for the results store: per-epoch curves by epoch, per-step ones by step."""
        c: dict[str, list[tuple[float, float]]] = {
            "epoch/train_loss": [(e.epoch, e.train_loss) for e in self.epochs],
            "epoch/grad_norm": [(e.epoch, e.grad_norm) for e in self.epochs],
            "epoch/val_loss": ([(0, self.initial_val_loss)] if self.initial_val_loss is not None else [])
            + [(e.epoch, e.val_loss) for e in self.epochs if e.val_loss is not None],
            "epoch/time_s": [(e.epoch, e.time_s) for e in self.epochs],
            "step/loss": [(s.step, s.loss) for s in self.steps],
            "step/grad_norm": [(s.step, s.grad_norm) for s in self.steps],
            "step/lr": [(s.step, s.lr) for s in self.steps],
        }
        for name, values in self.lam_trajectories().items():
            c[f"lam/{name}"] = [(i + 1, v) for i, v in enumerate(values)]
        for s in self.steps:
            for name, phi in s.phi.items():
                c.setdefault(f"phi/{name}", []).append((s.step, phi))
        c["step/mixer_loss"] = [(s.step, s.mixer_loss) for s in self.steps if s.mixer_loss is not None]
        return {k: v for k, v in c.items() if v}

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [asdict(s) for s in self.steps], "epochs": [asdict(e) for e in self.epochs],
                "initial_val_loss": self.initial_val_loss}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(steps=[StepInfo(**s) for s in data["steps"]], epochs=[EpochInfo(**e) for e in data["epochs"]],
                   initial_val_loss=data.get("initial_val_loss"))
