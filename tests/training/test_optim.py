"""Parameter groups: every role at its own rate (the hybrid's two branches apart), errors that name the fix,
and a hybrid with both branch rates equal to the one rate trains exactly as with one group."""

from __future__ import annotations

import pytest
import torch

import govtune.training.loop as loop
from govtune.adapters import AdapterConfig, hybrid_layers, inject, mixing, optimizer_parameters
from govtune.models import tiny_model
from govtune.text.encoding import PairCollator, encode_training_pairs, pad_token_id
from govtune.training import TrainConfig, train
from govtune.training.loop import _Run
from govtune.training.optim import group_rates, param_groups

WORDS = ["alpha", "bravo", "charlie", "delta"]
PAIRS = [(f"Item {i % 4}: the code word is", f" {WORDS[i % 4]}") for i in range(32)]


def _model(method: str, **options):
    torch.manual_seed(0)
    model, tok = tiny_model()
    enc = encode_training_pairs(tok, PAIRS[:8], 256)
    batch = {k: v for k, v in PairCollator(pad_token_id(tok))(enc).items()
             if k in ("input_ids", "attention_mask", "labels")}
    inject(model, AdapterConfig(method=method, r=4, alpha=8, boft_block_size=4, ga_batches=1, **options),
           calibration=[batch] if method in ("lora_ga", "hybrid") else None, progress=False)
    return model, tok


def _state(model) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def test_hybrid_branches_get_their_own_groups_and_rates():
    model, tok = _model("hybrid", lam_schedule="learned")
    config = TrainConfig(epochs=1, lr=1e-3, lr_branches={"lora_ga": 2e-5}, weight_decay=0.01, schedule="constant",
                         progress=False)
    run = _Run(model, tok, PAIRS, PAIRS[:8], config, None, (), None)  # what train() sets up
    groups = {g["name"]: g for g in run.optimizer.param_groups}
    assert list(groups) == ["lora_ga", "boft"]
    # the warm-up schedule scales every group from its own starting rate
    assert {n: g["initial_lr"] for n, g in groups.items()} == {"lora_ga": 2e-5, "boft": 1e-3}
    layers = hybrid_layers(model).values()
    assert {id(p) for p in groups["lora_ga"]["params"]} == {id(p) for m in layers for p in m.lora_parameters()}
    assert {id(p) for p in groups["boft"]["params"]} == {id(p) for m in layers for p in m.boft_parameters()}
    assert all(g["weight_decay"] == 0.01 for g in groups.values())  # both hold matrices only
    # phi: not in the adapter's optimiser, in the learned mixer's own at mixer_lr
    phis = {id(m.mixer_phi) for m in layers}
    assert not phis & {id(p) for g in groups.values() for p in g["params"]}
    assert group_rates(run.mixer.optimizer.optimizer) == {"phi": AdapterConfig().mixer_lr}
    run.start()
    run.train_epoch(1)
    assert run.scheduler.get_last_lr() == [2e-5, 1e-3]  # after the warm-up: each group at its own rate


def test_other_methods_keep_one_rate_with_vectors_undecayed():
    model, _ = tiny_model()
    for n, p in model.named_parameters():
        p.requires_grad = "layers.0" in n  # matrices and RMSNorm vectors
    groups = param_groups(model, 3e-4, weight_decay=0.1)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("default", 3e-4, 0.1), ("default/no_decay", 3e-4, 0.0)]
    assert [p for g in groups for p in g["params"]] and \
        {id(p) for g in groups for p in g["params"]} == {id(p) for p in optimizer_parameters(model)}
    assert all(p.ndim < 2 for p in groups[1]["params"]) and all(p.ndim >= 2 for p in groups[0]["params"])


def test_branch_rate_bounds_how_far_its_weights_move(single_thread):
    """Adam moves a weight by at most (1 - beta1) / sqrt(1 - beta2) ~ 3.2 lr per step: a branch at a tiny
    rate stays put while the other trains."""
    model, tok = _model("hybrid")
    before = _state(model)
    tiny, steps = 1e-7, 4
    result = train(model, tok, PAIRS, config=TrainConfig(epochs=1, lr=1e-2, lr_branches={"boft": tiny},
                                                          warmup_ratio=0.0, progress=False))
    assert result.steps == steps
    after = _state(model)
    moved = {n: float((after[n] - before[n]).abs().max()) for n in after if ".boft_R." in n or ".lora_" in n}
    boft = [v for n, v in moved.items() if ".boft_R." in n]
    lora = [v for n, v in moved.items() if n.endswith(("lora_A", "lora_B"))]
    assert boft and lora and max(boft) <= 3.2 * tiny * steps
    assert min(lora) > 100 * 3.2 * tiny * steps


def _one_group(model, lr, weight_decay, lr_branches):
    """The grouping before the branches had rates of their own: one rate for all, vectors undecayed."""
    assert lr_branches is None
    params = optimizer_parameters(model)
    return [g for g in ({"name": "decay", "params": [p for p in params if p.ndim >= 2], "lr": lr,
                         "weight_decay": weight_decay},
                        {"name": "no_decay", "params": [p for p in params if p.ndim < 2], "lr": lr,
                         "weight_decay": 0.0}) if g["params"]]


@pytest.mark.parametrize("schedule", ["adaptive", "learned"])
def test_equal_branch_rates_train_exactly_as_one_group(schedule, single_thread, monkeypatch):
    runs = {}
    for name, branches in (("one group", None), ("branches", {"lora_ga": 5e-3, "boft": 5e-3})):
        model, tok = _model("hybrid", lam_schedule=schedule)
        with monkeypatch.context() as m:
            if branches is None:
                m.setattr(loop, "param_groups", _one_group)
            result = train(model, tok, PAIRS, PAIRS[:8], TrainConfig(epochs=2, lr=5e-3, lr_branches=branches,
                                                                     weight_decay=0.01, progress=False))
        runs[name] = (_state(model), mixing(model), [s.loss for s in result.history.steps])
    (w1, lam1, loss1), (w2, lam2, loss2) = runs["one group"], runs["branches"]
    assert loss1 == loss2 and lam1 == lam2 and len(set(lam1.values())) > 1
    assert w1.keys() == w2.keys() and all(torch.equal(w1[n], w2[n]) for n in w1)
    assert any(not torch.equal(w1[n], _model("hybrid", lam_schedule=schedule)[0].state_dict()[n])
               for n in w1 if ".lora_" in n)  # it trained


def test_lr_branches_errors_name_the_key_value_and_fix():
    with pytest.raises(ValueError, match=r"TrainConfig.lr_branches: unknown hybrid branch 'lora' \(did you mean "
                                          r"'lora_ga'\?\)"):
        TrainConfig(lr_branches={"lora": 1e-5})
    with pytest.raises(ValueError, match=r"TrainConfig.lr_branches.boft must be a finite learning rate > 0, got "
                                          r"-0.001"):
        TrainConfig(lr_branches={"boft": -1e-3})
    with pytest.raises(ValueError, match="mixer_lr"):
        TrainConfig(lr_branches={"phi": 0.1})
    model, _ = _model("lora")
    with pytest.raises(ValueError, match="the model has no hybrid layer; drop lr_branches"):
        param_groups(model, 1e-4, lr_branches={"boft": 1e-3})
