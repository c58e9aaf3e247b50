"""Shared setup of the Trainer tests: the same tiny model, adapter, data order, optimiser and schedule for
govtune's own loop and for transformers' Trainer with govtune's callback."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from govtune.adapters import AdapterConfig, inject
from govtune.integrations import prepare_trainer
from govtune.models import tiny_model
from govtune.text.encoding import EncodedPair, PairCollator, encode_training_pairs, pad_token_id
from govtune.training import TrainConfig
from govtune.training.data import LengthGroupedBatches

WORDS = ["alpha", "bravo", "charlie", "delta"]
PAIRS = [(f"Item {i % 4}: the code word is", f" {WORDS[i % 4]}") for i in range(32)]
VAL = PAIRS[:8]
# 4 batches of 8 per epoch, 5 epochs = 20 steps; a small clip norm so that clipping is active.
CONFIG = TrainConfig(epochs=5, lr=3e-3, batch_size=8, weight_decay=0.1, warmup_ratio=0.1, schedule="linear",
                     max_grad_norm=0.05, seed=0, progress=False, checkpoints=False)
STEPS = 20
METHODS = ["lora", "lora_ga", "boft", "hybrid", "hybrid_learned", "unitary_full"]
BRANCH_RATES = {"lora_ga": 1e-3, "boft": 1e-2}  # the hybrid's branches at rates of their own


def adapted(method: str, **options):
    """A tiny Llama with a govtune adapter; "hybrid_learned" is the hybrid with the learned mixer."""
    model, tok = tiny_model()
    if method == "hybrid_learned":
        method, options = "hybrid", {"lam_schedule": "learned", "mixer_lr": 0.1, "mixer_every": 2, **options}
    enc = encode_training_pairs(tok, PAIRS[:16], 256)
    calibration = [{k: v for k, v in PairCollator(pad_token_id(tok))(enc[i:i + 8]).items()
                    if k in ("input_ids", "attention_mask", "labels")} for i in (0, 8)]
    inject(model, AdapterConfig(method=method, r=4, alpha=8, boft_block_size=4, ga_batches=2, **options),
           calibration=calibration if method in ("lora_ga", "hybrid") else None, progress=False)
    return model, tok


class RowCollator:
    """govtune's PairCollator over rows stored as dicts (a Trainer dataset yields dicts)."""

    def __init__(self, tok):
        self.pairs = PairCollator(pad_token_id(tok))

    def __call__(self, rows):
        return self.pairs([EncodedPair(**r) for r in rows])


def govtune_order_rows(tok, config: TrainConfig = CONFIG) -> list[dict]:
    """The training examples in the order govtune's loop visits them, every epoch one after the other."""
    enc = encode_training_pairs(tok, PAIRS, config.max_length)
    batches = LengthGroupedBatches([len(e.input_ids) for e in enc], config.batch_size, seed=config.seed)
    return [asdict(enc[i]) for _ in range(config.epochs) for batch in batches for i in batch]


def val_rows(tok, config: TrainConfig = CONFIG) -> list[dict]:
    """The validation examples as govtune's loop batches them: sorted by length."""
    enc = encode_training_pairs(tok, VAL, config.max_length)
    enc.sort(key=lambda e: len(e.input_ids))
    return [asdict(e) for e in enc]


def trainer_args(out_dir: Path, config: TrainConfig = CONFIG, **overrides) -> TrainingArguments:
    """TrainingArguments equal to `config`: AdamW, linear schedule with the same warm-up, clipping, seed,
    batches in the dataset's order."""
    options = dict(output_dir=str(out_dir), per_device_train_batch_size=config.batch_size,
                   per_device_eval_batch_size=config.batch_size, max_steps=STEPS, learning_rate=config.lr,
                   weight_decay=config.weight_decay, warmup_steps=round(config.warmup_ratio * STEPS),
                   lr_scheduler_type="linear", max_grad_norm=config.max_grad_norm, optim="adamw_torch",
                   seed=config.seed, train_sampling_strategy="sequential", logging_steps=1, save_strategy="no",
                   report_to="none", use_cpu=True, disable_tqdm=True, remove_unused_columns=False)
    return TrainingArguments(**{**options, **overrides})


def govtune_trainer(method: str, out_dir: Path, lr_branches: dict | None = None, **overrides) -> Trainer:
    """A prepared Trainer on a fresh adapted tiny model, fed govtune's batches."""
    model, tok = adapted(method)
    trainer = Trainer(model=model, args=trainer_args(out_dir, **overrides), train_dataset=govtune_order_rows(tok),
                      eval_dataset=val_rows(tok), data_collator=RowCollator(tok))
    prepare_trainer(trainer, lr_branches=lr_branches)
    return trainer


def tunable_state(model) -> dict[str, torch.Tensor]:
    """Every trainable parameter and every hybrid lam / learned phi, by name."""
    return {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]
            if t.requires_grad or n.endswith((".lam", ".mixer_phi")) or "mixer_phi" in n}
