"""transformers' Trainer with govtune's callback trains exactly as govtune's own loop: same weights, lam and
phi after 20 steps of the same batches, optimiser (parameter groups, branch rates), schedule, clipping and
seed; a resumed run equals an uninterrupted one; lam, phi and the branch gradient norms reach the log."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from trainer_setup import (BRANCH_RATES, CONFIG, METHODS, PAIRS, STEPS, VAL, adapted, govtune_trainer,
                           tunable_state)

from govtune.adapters import load_adapter, mixing, phi_values
from govtune.integrations.trainer import ADAPTER_DIR, STATE_FILE
from govtune.training import train
from govtune.training.optim import param_groups


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=tol, rtol=0), (name, float((a[name] - b[name]).abs().max()))


@pytest.mark.parametrize("method", [*METHODS, "hybrid_branch_rates"])
def test_trainer_with_callback_equals_govtune_training_loop(tmp_path, method):
    rates = BRANCH_RATES if method == "hybrid_branch_rates" else None
    method = "hybrid" if rates else method
    reference, tok = adapted(method)
    start = tunable_state(reference)
    history = train(reference, tok, PAIRS, VAL, replace(CONFIG, lr_branches=rates)).history

    trainer = govtune_trainer(method, tmp_path, lr_branches=rates)
    groups = param_groups(reference, CONFIG.lr, CONFIG.weight_decay, rates)  # none for unitary_full: a placeholder
    assert [g["lr"] for g in trainer.optimizer.param_groups] == ([g["lr"] for g in groups] or [CONFIG.lr])
    trainer.train()
    ours = tunable_state(trainer.model)
    _assert_same(ours, tunable_state(reference))
    assert any((ours[n] - start[n]).abs().max() > 1e-4 for n in ours)  # it trained: the test can fail

    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logs] == list(range(1, STEPS + 1))
    for log, step in zip(logs, history.steps):
        # the Trainer's own gradient norm is govtune's: before clipping, over the same parameters
        assert log["grad_norm"] == pytest.approx(step.grad_norm, rel=1e-5)
        assert log["loss"] == pytest.approx(step.loss, rel=1e-5)
        for key, per_layer in (("lam", step.lam), ("phi", step.phi)):
            logged = {k[len(key) + 1:]: v for k, v in log.items() if k.startswith(f"{key}/") and k != f"{key}/mean"}
            assert logged == pytest.approx(per_layer, abs=1e-6)
    if method.startswith("hybrid"):
        assert logs[-1]["lam/mean"] == pytest.approx(sum(mixing(reference).values()) / len(mixing(reference)))
        assert logs[0]["grad_norm/lora"] > 0 and logs[0]["grad_norm/boft"] > 0
        lams = [log["lam/mean"] for log in logs]
        assert max(lams) - min(lams) > 1e-3  # lam moved (by gradients, or by the mixer's phi steps)
    if method == "hybrid_learned":  # phi moved in the mixer's steps (every 2nd), logged with its loss
        assert [h["step"] for h in logs if "mixer_loss" in h][:2] == [2, 4]
        assert phi_values(trainer.model) == pytest.approx(phi_values(reference), abs=1e-6)
    if method == "unitary_full":
        assert logs[0]["grad_norm/riemannian"] > 0


@pytest.mark.parametrize("method", ["hybrid_learned", "unitary_full"])
def test_resumed_trainer_run_equals_the_uninterrupted_run(tmp_path, method):
    whole = govtune_trainer(method, tmp_path / "whole", save_strategy="steps", save_steps=10)
    whole.train()
    checkpoint = tmp_path / "whole" / "checkpoint-10"
    assert (checkpoint / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    assert (checkpoint / STATE_FILE).is_file() == (method == "hybrid_learned")

    resumed = govtune_trainer(method, tmp_path / "resumed", save_strategy="steps", save_steps=10)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == STEPS
    _assert_same(tunable_state(resumed.model), tunable_state(whole.model))

    # each checkpoint's adapter loads with govtune.load_adapter into a fresh base model
    fresh, _ = adapted(method)
    load_adapter(fresh, tmp_path / "resumed" / f"checkpoint-{STEPS}" / ADAPTER_DIR)
    _assert_same(tunable_state(fresh), tunable_state(whole.model), tol=0)
