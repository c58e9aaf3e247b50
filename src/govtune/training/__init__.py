"""Training: the accelerate loop, its log and checkpoints, and the footprint of a run."""

from govtune.training.callbacks import Callback, EpochInfo, History, StepInfo
from govtune.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from govtune.training.footprint import Footprint, FootprintMeter
from govtune.training.config import TrainConfig, TrainingDiverged, TrainResult, make_accelerator
from govtune.training.loop import evaluate_loss, train
from govtune.training.resume import ResumeMismatch

__all__ = ["Callback", "EpochInfo", "Footprint", "FootprintMeter", "History", "ResumeMismatch", "StepInfo",
           "TrainConfig", "TrainResult", "TrainingDiverged", "evaluate_loss", "latest_checkpoint", "load_checkpoint",
           "make_accelerator", "save_checkpoint", "train"]
