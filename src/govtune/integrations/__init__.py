"""govtune's adapters in other training loops: transformers' Trainer and TRL's SFTTrainer
(`prepare_trainer`, `GovtuneCallback`)."""

from govtune.integrations.trainer import GovtuneCallback, prepare_trainer

__all__ = ["GovtuneCallback", "prepare_trainer"]
