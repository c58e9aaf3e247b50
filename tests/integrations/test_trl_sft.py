"""TRL's SFTTrainer with govtune's callback trains the hybrid on a prompt-completion dataset, with the loss
on the completion only, under TRL's defaults (bf16 autocast included)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from trainer_setup import PAIRS, adapted
from trl import SFTConfig, SFTTrainer

from govtune.adapters import mixing
from govtune.integrations import prepare_trainer
from govtune.text.target_loss import TargetLoss

IGNORE = -100


def test_sft_trainer_trains_the_hybrid_on_the_completion_only(tmp_path):
    model, tok = adapted("hybrid")
    lam0 = mixing(model)
    data = Dataset.from_list([{"prompt": p, "completion": c} for p, c in PAIRS])
    args = SFTConfig(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=1e-2,
                     logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                     max_length=128)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    prepare_trainer(trainer, layer_logs=False)

    batch = next(iter(trainer.get_train_dataloader()))
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        text = tok.decode(ids[mask.bool()], skip_special_tokens=True)
        target = tok.decode(labels[labels != IGNORE], skip_special_tokens=True)
        # the labelled tokens are exactly the completion: the prompt (and the padding) carry no loss
        assert target and (text[:-len(target)], target) in PAIRS
        first = int((labels != IGNORE).nonzero()[0])
        assert (labels[first:][mask[first:].bool()] == ids[first:][mask[first:].bool()]).all()
    with torch.no_grad():  # TRL's loss is govtune's mean over the target tokens, not over the whole sequence
        sft_loss = float(trainer.compute_loss(model, batch))
        whole = float(model(**{**batch, "labels": batch["input_ids"]}).loss)
        assert sft_loss == pytest.approx(float(TargetLoss(model)(model, batch)[0]), rel=1e-5)
        assert sft_loss != pytest.approx(whole, rel=1e-4)

    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 4 and all("lam/mean" in h and h["grad_norm/lora"] > 0 for h in logs)
    assert all(abs(mixing(model)[n] - lam0[n]) > 1e-3 for n in lam0)  # lam moved in every layer
    lam = list(mixing(model).values())
    assert (logs[-1]["lam/min"], logs[-1]["lam/mean"], logs[-1]["lam/max"]) == \
        pytest.approx((min(lam), sum(lam) / len(lam), max(lam)), abs=1e-12)
    assert not any(k.startswith("lam/model.") for k in logs[-1])  # one value per layer only when asked
