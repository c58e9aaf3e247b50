"""Bad inputs to govtune's Trainer integration: each a clear error naming the fix, before anything changes."""

from __future__ import annotations

import shutil

import pytest
import torch
from trainer_setup import RowCollator, adapted, govtune_order_rows, govtune_trainer, trainer_args, tunable_state
from transformers import Trainer

from govtune.adapters import optimizer_parameters
from govtune.integrations import prepare_trainer
from govtune.integrations.trainer import ADAPTER_DIR
from govtune.models import tiny_model


def _trainer(model, tok, out_dir, optimizer=None, **overrides):
    return Trainer(model=model, args=trainer_args(out_dir, **overrides), train_dataset=govtune_order_rows(tok),
                   data_collator=RowCollator(tok), optimizers=(optimizer, None))


def test_a_model_without_govtune_adapters_is_refused(tmp_path):
    model, tok = tiny_model()
    with pytest.raises(ValueError, match=r"no govtune adapters: call govtune.inject\(model, AdapterConfig"):
        prepare_trainer(_trainer(model, tok, tmp_path))


def test_an_optimizer_holding_the_unitary_parameters_is_refused(tmp_path):
    model, tok = adapted("unitary_full")
    everything = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match=r"holds 8 unitary_full parameters .*optimizer_parameters\(model\)"):
        prepare_trainer(_trainer(model, tok, tmp_path, everything))
    # built as the message says, it is accepted
    trainer = _trainer(model, tok, tmp_path, torch.optim.AdamW(optimizer_parameters(model) or [torch.zeros(1)]))
    with pytest.raises(ValueError, match="already has one: build it from govtune.training.optim.param_groups"):
        prepare_trainer(trainer, lr_branches={"boft": 1e-3})
    prepare_trainer(trainer)
    with pytest.raises(ValueError, match="already called"):
        prepare_trainer(trainer)


def test_resuming_from_a_checkpoint_of_another_method_loads_nothing(tmp_path):
    govtune_trainer("lora", tmp_path / "lora", max_steps=2, save_strategy="steps", save_steps=2).train()
    checkpoint = tmp_path / "lora" / "checkpoint-2"
    other = govtune_trainer("boft", tmp_path / "boft")
    before = tunable_state(other.model)
    with pytest.raises(ValueError, match=r"a lora adapter with another config than this model's boft adapter "
                                         r"\(method 'lora' != 'boft'.*inject the checkpoint's AdapterConfig"):
        other.train(resume_from_checkpoint=str(checkpoint))
    after = tunable_state(other.model)
    assert all(torch.equal(before[n], after[n]) for n in before) and other.state.global_step == 0

    shutil.rmtree(checkpoint / ADAPTER_DIR)  # a checkpoint of a Trainer run without govtune's callback
    with pytest.raises(ValueError, match="holds no govtune adapter .*prepare_trainer"):
        govtune_trainer("lora", tmp_path / "again").train(resume_from_checkpoint=str(checkpoint))


def test_the_learned_mixer_without_an_eval_dataset_names_the_fix(tmp_path):
    model, tok = adapted("hybrid_learned")
    trainer = _trainer(model, tok, tmp_path)
    prepare_trainer(trainer)
    with pytest.raises(ValueError, match="no eval_dataset: pass eval_dataset="):
        trainer.train()
