import copy

import pytest
import torch

from govtune.adapters import AdapterConfig, inject, mixing, riemannian_modules
from govtune.adapters.config import METHODS as ADAPTER_METHODS
from govtune.constants import LR_SCHEDULES, METHODS
from govtune.models import tiny_model
from govtune.study.config import ADAPTER_METHODS as STUDY_METHODS
from govtune.study.config import SCHEDULES as STUDY_SCHEDULES
from govtune.text.encoding import PairCollator, encode_training_pairs, pad_token_id
from govtune.training import Callback, TrainConfig, TrainingDiverged, latest_checkpoint, load_checkpoint, train
from govtune.training.data import LengthGroupedBatches
from govtune.text.target_loss import TargetLoss
from govtune.training.loop import SCHEDULES

WORDS = ["alpha", "bravo", "charlie", "delta"]
PAIRS = [(f"Item {i % 4}: the code word is", f" {WORDS[i % 4]}") for i in range(32)]


def _tunable(model):
    # Train attention projections and the head: enough capacity, no adapter pillar needed.
    for name, p in model.named_parameters():
        p.requires_grad = any(k in name for k in ("q_proj", "v_proj", "lm_head"))
    return model


def test_trainer_reduces_training_and_validation_loss(tmp_path):
    model, tok = tiny_model()
    _tunable(model)
    result = train(model, tok, PAIRS, PAIRS[:8], TrainConfig(epochs=8, lr=1e-2, batch_size=8, progress=False,
                                                             warmup_ratio=0.1), out_dir=tmp_path)
    ep = result.history.epochs
    assert len(ep) == 8 and result.steps == 8 * 4
    assert ep[-1].train_loss < 0.5 * ep[0].train_loss
    assert ep[-1].val_loss < 0.5 * ep[0].val_loss
    assert all(e.grad_norm > 0 for e in ep)
    # the validation loss before the first step is the untrained model's, and starts the epoch curve
    fresh, _ = tiny_model()
    batch = PairCollator(pad_token_id(tok))(encode_training_pairs(tok, PAIRS[:8], 512))
    with torch.no_grad():
        before, _ = TargetLoss(fresh)(fresh, batch)
    assert result.history.initial_val_loss == pytest.approx(float(before), rel=1e-5)
    assert result.history.curves()["epoch/val_loss"][0] == (0, result.history.initial_val_loss)
    assert result.history.initial_val_loss > ep[0].val_loss
    # per-step log: lr warms up then decays linearly to 0
    lrs = [s.lr for s in result.history.steps]
    assert lrs[0] < lrs[2] and lrs[-1] < lrs[len(lrs) // 2]
    fp = result.footprint
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert fp.tunable_params_m == pytest.approx(n / 1e6, abs=1e-4)
    assert fp.step_time_s > 0 and fp.peak_memory_mb > 0 and fp.timed_steps == 32 - 2


def test_checkpoint_restores_the_trained_weights(tmp_path):
    model, tok = tiny_model()
    _tunable(model)
    train(model, tok, PAIRS, config=TrainConfig(epochs=2, lr=3e-3, progress=False), out_dir=tmp_path)
    fresh, _ = tiny_model()
    _tunable(fresh)
    state = load_checkpoint(tmp_path, fresh)
    assert state["step"] == 8 and state["epoch"] == 2
    for (n, a), (_, b) in zip(model.named_parameters(), fresh.named_parameters()):
        assert torch.equal(a, b), n


class _Snapshot(Callback):
    def __init__(self, model):
        self.model, self.weights = model, {}

    def on_epoch_end(self, info):
        self.weights[info.epoch] = copy.deepcopy({n: p.detach().clone() for n, p in
                                                  self.model.named_parameters() if p.requires_grad})


def test_nan_loss_stops_with_step_message_and_keeps_last_good_checkpoint(tmp_path):
    model, tok = tiny_model()
    _tunable(model)
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] > 6 else output  # 4 steps per epoch: dies in epoch 2

    model.lm_head.register_forward_hook(poison)
    snap = _Snapshot(model)
    with pytest.raises(TrainingDiverged) as info:
        train(model, tok, PAIRS, config=TrainConfig(epochs=3, lr=3e-3, progress=False), out_dir=tmp_path,
              callbacks=[snap])
    err = info.value
    assert err.step == 7 and "step 7 (epoch 2)" in str(err) and "nan" in str(err)
    assert err.checkpoint == latest_checkpoint(tmp_path) and err.checkpoint.name == "checkpoint-step4"
    assert str(err.checkpoint) in str(err)
    fresh, _ = tiny_model()
    _tunable(fresh)
    assert load_checkpoint(tmp_path, fresh)["epoch"] == 1
    for n, p in fresh.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, snap.weights[1][n]), n


def test_no_trainable_parameters_is_a_clear_error():
    model, tok = tiny_model()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="inject an adapter"):
        train(model, tok, PAIRS, config=TrainConfig(epochs=1, progress=False))


def test_bad_train_config_values():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="exp")
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-bloom"])
def test_target_loss_with_kept_logits_equals_the_full_right_padded_loss(kind):
    model, tok = tiny_model(kind)
    pairs = [("Short prompt:", " yes"), ("A much longer prompt than the first one:", " a longer target"),
             ("Mid prompt here:", " no")]
    enc = encode_training_pairs(tok, pairs, 128)
    left = PairCollator(pad_token_id(tok), "left")(enc)
    right = PairCollator(pad_token_id(tok), "right")(enc)
    with torch.no_grad():
        ref = model(input_ids=right["input_ids"], attention_mask=right["attention_mask"],
                    labels=right["labels"]).loss  # transformers' own token-mean loss
        loss_fn = TargetLoss(model)
        assert loss_fn.keep  # both model families let us skip the prompt's logits
        seen = []
        hook = model.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.append(a[0].shape))
        loss, n = loss_fn(model, left)
        hook.remove()
    targets = sum(sum(1 for x in e.labels if x != -100) for e in enc)
    assert int(n) == targets
    # the head saw only the positions that predict a target, packed into one row, not K per row
    assert seen == [torch.Size([1, targets, model.config.hidden_size])]
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-5)


def test_target_loss_gradient_equals_the_full_right_padded_loss_gradient():
    model, tok = tiny_model()
    inject(model, AdapterConfig(method="lora", r=4))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B = 0 at init would give A no gradient to compare
            torch.nn.init.normal_(p, std=0.1)
    pairs = [("Short prompt:", " yes"), ("A much longer prompt than the first one:", " a longer target"),
             ("Mid prompt here:", " no")]
    enc = encode_training_pairs(tok, pairs, 128)
    left = PairCollator(pad_token_id(tok), "left")(enc)
    right = PairCollator(pad_token_id(tok), "right")(enc)
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(input_ids=right["input_ids"], attention_mask=right["attention_mask"], labels=right["labels"]).loss
    expected = torch.autograd.grad(ref, params)
    loss, _ = TargetLoss(model)(model, left)
    for got, want in zip(torch.autograd.grad(loss, params), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_length_grouped_batches_cover_every_example_once_per_epoch_and_group_lengths():
    lengths = [10, 200, 12, 190, 11, 210, 9, 205] * 4
    sampler = LengthGroupedBatches(lengths, batch_size=4, seed=3, group=8)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(32)) and len(epoch) == len(sampler) == 8
        assert all(max(lengths[i] for i in b) - min(lengths[i] for i in b) < 20 for b in epoch)
    assert first != second  # a new order each epoch
    assert list(LengthGroupedBatches(lengths, 4, seed=3, group=8)) == first  # seeded


def test_unitary_full_is_trained_by_its_riemannian_step_and_stays_unitary(tmp_path):
    model, tok = tiny_model()
    inject(model, AdapterConfig(method="unitary_full"))
    mods = riemannian_modules(model)
    assert mods
    start = [m.matrix().clone() for m in mods]
    result = train(model, tok, PAIRS, config=TrainConfig(epochs=1, lr=1e-2, progress=False))
    assert result.steps == 4 and result.footprint.tunable_params_m > 0
    for m, u0 in zip(mods, start):
        u = m.matrix()
        assert not torch.allclose(u, u0)  # it trained
        # AdamW would have moved it off the manifold; the Riemannian step keeps U^T U = I
        torch.testing.assert_close(u.T @ u, torch.eye(u.shape[0], dtype=u.dtype), atol=1e-6, rtol=0)


def test_hybrid_lam_is_logged_for_every_layer_at_every_step():
    model, tok = tiny_model()
    calib = [PairCollator(pad_token_id(tok))(encode_training_pairs(tok, PAIRS[:8], 64))]
    calib = [{k: v for k, v in b.items() if k != "position_ids"} for b in calib]
    inject(model, AdapterConfig(method="hybrid", r=4, alpha=8, ga_batches=1), calibration=calib)
    result = train(model, tok, PAIRS, config=TrainConfig(epochs=2, lr=1e-2, progress=False))
    layers = set(mixing(model))
    assert layers and all(set(s.lam) == layers for s in result.history.steps)
    traj = result.history.lam_trajectories()
    assert all(len(v) == result.steps == 8 for v in traj.values())
    assert any(len(set(v)) > 1 for v in traj.values())  # adaptive: lam moves with the gradients
    assert all(0 < x < 1 for v in traj.values() for x in v)
    assert result.history.lam_final() == mixing(model)


class _Interrupt(Callback):
    """Stops the run like a killed job, right after epoch `at` (its checkpoint is already written)."""

    def __init__(self, at: int):
        self.at = at

    def on_epoch_end(self, info):
        if info.epoch == self.at:
            raise KeyboardInterrupt


def _adapted(method: str | None, **options):
    """A tiny model with trainable weights: plain parameters, or a govtune adapter (with calibration);
    "hybrid_learned" is the hybrid with the learned mixer."""
    torch.manual_seed(0)
    model, tok = tiny_model()
    if method is None:
        return _tunable(model), tok
    if method == "hybrid_learned":
        method, options = "hybrid", {"lam_schedule": "learned", "mixer_lr": 0.1, **options}
    enc = encode_training_pairs(tok, PAIRS[:16], 256)
    calibration = [{k: v for k, v in PairCollator(pad_token_id(tok))(enc[i:i + 8]).items()
                    if k in ("input_ids", "attention_mask", "labels")} for i in (0, 8)]
    inject(model, AdapterConfig(method=method, r=4, alpha=8, boft_block_size=4, ga_batches=2, **options),
           calibration=calibration if method in ("lora_ga", "hybrid") else None)
    return model, tok


@pytest.mark.parametrize("method", [None, "lora_ga", "hybrid", "hybrid_learned"])
def test_resume_after_an_interruption_equals_the_uninterrupted_run(tmp_path, method):
    config = TrainConfig(epochs=3, lr=3e-3, batch_size=8, progress=False, resume=True)
    model, tok = _adapted(method)
    whole = train(model, tok, PAIRS, PAIRS[:8], config, out_dir=tmp_path / "whole")

    cut, tok = _adapted(method)
    with pytest.raises(KeyboardInterrupt):
        train(cut, tok, PAIRS, PAIRS[:8], config, out_dir=tmp_path / "cut", callbacks=[_Interrupt(2)])
    assert latest_checkpoint(tmp_path / "cut").name == "checkpoint-step8"
    resumed_model, tok = _adapted(method)  # a new process: the base model and adapter built again
    seen = []

    class _Steps(Callback):
        def on_step_end(self, info):
            seen.append(info.step)

    resumed = train(resumed_model, tok, PAIRS, PAIRS[:8], config, out_dir=tmp_path / "cut", callbacks=[_Steps()])
    assert seen == [9, 10, 11, 12]  # only the third epoch ran
    assert resumed.steps == whole.steps == 12
    for (n, a), (_, b) in zip(model.named_parameters(), resumed_model.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
    assert [s.loss for s in resumed.history.steps] == pytest.approx([s.loss for s in whole.history.steps], abs=1e-5)
    assert [e.epoch for e in resumed.history.epochs] == [1, 2, 3]
    assert resumed.history.epochs[1].checkpoint.endswith("checkpoint-step8")
    if method in ("hybrid", "hybrid_learned"):
        assert resumed.history.lam_final() == pytest.approx(whole.history.lam_final(), abs=1e-6)
    if method == "hybrid_learned":  # phi (a frozen parameter, compared above) and its Adam state
        assert [s.phi for s in resumed.history.steps] == [s.phi for s in whole.history.steps]
        assert any(s.phi != resumed.history.steps[0].phi for s in resumed.history.steps)
        assert resumed.history.steps[-1].mixer_loss == pytest.approx(whole.history.steps[-1].mixer_loss, abs=1e-5)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    model, tok = _adapted(None)
    train(model, tok, PAIRS, config=TrainConfig(epochs=1, lr=3e-3, progress=False), out_dir=tmp_path)
    model, tok = _adapted(None)
    with pytest.raises(ValueError, match=r"epochs 1 != 2.*remove"):
        train(model, tok, PAIRS, config=TrainConfig(epochs=2, lr=3e-3, progress=False, resume=True),
              out_dir=tmp_path)


def test_every_schedule_name_maps_to_a_transformers_scheduler_and_the_study_config_knows_the_same():
    assert tuple(SCHEDULES) == LR_SCHEDULES == STUDY_SCHEDULES
    assert METHODS == ADAPTER_METHODS == STUDY_METHODS
    for name in LR_SCHEDULES:
        TrainConfig(schedule=name)


@pytest.mark.parametrize("damaged", ["trainer_state.pt", "adapter_model.safetensors"])
def test_a_checkpoint_cut_short_is_named_and_nothing_is_loaded(tmp_path, damaged):
    """A file of the checkpoint cut short: CorruptCheckpoint naming it, raised before the model changes (a
    study's cell then starts over instead of failing)."""
    from govtune.adapters import AdapterConfig, inject
    from govtune.training.checkpoint import CorruptCheckpoint

    model, tok = tiny_model()
    inject(model, AdapterConfig(method="lora", r=2, target_modules=["q_proj"]))
    train(model, tok, PAIRS[:8], config=TrainConfig(epochs=1, lr=3e-3, progress=False), out_dir=tmp_path)
    path = next(tmp_path.rglob(damaged))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fresh, _ = tiny_model()
    inject(fresh, AdapterConfig(method="lora", r=2, target_modules=["q_proj"]))
    before = {n: p.detach().clone() for n, p in fresh.named_parameters()}
    with pytest.raises(CorruptCheckpoint, match=damaged):
        load_checkpoint(tmp_path, fresh)
    assert all(torch.equal(before[n], p) for n, p in fresh.named_parameters())
