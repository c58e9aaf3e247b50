"""The learned mixer in the training loop: phi moves only in its validation steps, is logged per layer per
step, and needs validation data."""

from __future__ import annotations

import pytest
import torch
from test_loop import PAIRS, _adapted

from govtune.adapters import learned_layers, mixer_parameters, mixing, phi_values
from govtune.study.config import StudyConfig
from govtune.training import TrainConfig, train
from govtune.training.mixer import ValidationMixer

CONFIG = TrainConfig(epochs=2, lr=3e-3, batch_size=8, progress=False)  # 4 steps per epoch


def test_phi_moves_only_in_the_mixer_steps_and_is_logged_per_layer_per_step():
    model, tok = _adapted("hybrid_learned", mixer_every=3)
    phi0 = phi_values(model)
    result = train(model, tok, PAIRS, PAIRS[:8], CONFIG)
    steps = result.history.steps
    assert len(steps) == 8 and all(set(s.phi) == set(phi0) == set(s.lam) for s in steps)
    # AdamW stepped the adapter at every step; phi changed at steps 3 and 6 only, the mixer's.
    assert [s.mixer_loss is not None for s in steps] == [i % 3 == 0 for i in range(1, 9)]
    trail = [phi0] + [s.phi for s in steps]
    moved = [trail[i] != trail[i - 1] for i in range(1, 9)]
    assert moved == [False, False, True, False, False, True, False, False]
    for s in steps:  # the logged lam is the function of the logged phi
        for name, phi in s.phi.items():
            assert s.lam[name] == pytest.approx(0.05 + 0.9 * torch.sigmoid(torch.tensor(phi)).item(), abs=1e-6)
    assert steps[-1].phi == phi_values(model) and steps[-1].lam == mixing(model)
    curves = result.history.curves()
    assert len([k for k in curves if k.startswith("phi/")]) == len(phi0) == 8
    assert [x for x, _ in curves["step/mixer_loss"]] == [3, 6]


def test_training_without_mixer_steps_leaves_phi_exactly_where_it_started():
    model, tok = _adapted("hybrid_learned", mixer_every=100)  # never due in 8 steps
    phi0, adapter0 = phi_values(model), [p.detach().clone() for p in model.parameters() if p.requires_grad]
    train(model, tok, PAIRS, PAIRS[:8], CONFIG)
    assert phi_values(model) == phi0  # the training loss and AdamW never reached phi ...
    after = [p for p in model.parameters() if p.requires_grad]
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(adapter0, after))  # ... while the adapter trained
    assert all(layer.mixer_phi.grad is None for layer in learned_layers(model).values())


def test_mixer_batches_are_a_seeded_order_per_pass():
    model, _ = _adapted("hybrid_learned")
    batches = [{"i": torch.tensor(i)} for i in range(5)]
    mixer = ValidationMixer(model, batches, every=1, lr=0.1, seed=3, loss_fn=lambda m, b: None)
    seen = [int(mixer.batch_for(u)["i"]) for u in range(15)]
    for p in range(3):  # each pass visits every batch once
        assert sorted(seen[5 * p:5 * p + 5]) == [0, 1, 2, 3, 4]
    assert seen[:5] != seen[5:10] or seen[5:10] != seen[10:]
    again = ValidationMixer(model, batches, every=1, lr=0.1, seed=3, loss_fn=lambda m, b: None)
    assert [int(again.batch_for(u)["i"]) for u in range(15)] == seen  # a resumed run sees the same batches


def test_learned_schedule_without_validation_data_names_the_fix():
    model, tok = _adapted("hybrid_learned")
    with pytest.raises(ValueError, match=r"no validation data: pass val_pairs.*val_per_language"):
        train(model, tok, PAIRS, (), CONFIG)


def test_study_config_refuses_a_learned_variant_without_validation_rows():
    variants = {"hybrid_learned": {"method": "hybrid", "lam_schedule": "learned"}}
    with pytest.raises(ValueError, match=r"hybrid_learned.*val_per_language >= 1"):
        StudyConfig(methods=["lora", "hybrid_learned"], variants=variants, val_per_language=0)
    StudyConfig(methods=["lora", "hybrid_learned"], variants=variants, val_per_language=4)


def test_a_non_finite_mixer_step_leaves_phi_unchanged_and_reports_nan():
    model, _ = _adapted("hybrid_learned")
    phi0 = phi_values(model)

    def bad_loss(m, batch):
        return sum(p for p in mixer_parameters(m)) * float("nan")

    mixer = ValidationMixer(model, [{}], every=1, lr=0.1, seed=0, loss_fn=bad_loss)
    assert mixer.maybe_step(1) != mixer.maybe_step(1)  # nan, twice: no update happened
    assert phi_values(model) == phi0 and all(p.grad is None for p in mixer_parameters(model))
    good = ValidationMixer(model, [{}], every=1, lr=0.1, seed=0,
                           loss_fn=lambda m, batch: sum(p for p in mixer_parameters(m)))  # d/dphi = 1
    assert good.maybe_step(1) == pytest.approx(sum(phi0.values()))
    assert all(phi_values(model)[n] == pytest.approx(v - 0.1, abs=1e-6) for n, v in phi0.items())  # one Adam step
