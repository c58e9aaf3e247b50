"""Data-parallel training equals one process: 2 CPU processes (gloo), each with half of every batch, give the
one-process run's weights, lam, phi and losses; the loss of a step is the mean over all its target tokens."""

import importlib.util
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from govtune.text.encoding import IGNORE_INDEX, PairCollator, encode_training_pairs, pad_token_id
from govtune.training import train
from govtune.training.data import LengthGroupedBatches, process_rows, target_count
from govtune.text.target_loss import TargetLoss

RUNNER = Path(__file__).with_name("dp_train_run.py")


def _runner():
    spec = importlib.util.spec_from_file_location("dp_train_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_process_shares_concatenate_to_the_global_batch():
    for n in range(0, 9):
        rows = list(range(10, 10 + n))
        for world in (1, 2, 3, 4):
            shares = [process_rows(rows, r, world) for r in range(world)]
            assert sum(shares, []) == rows  # same rows, same order
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_target_count_is_what_the_loss_counts(tiny_llama):
    model, tok = tiny_llama
    enc = encode_training_pairs(tok, _runner().PAIRS[:6], 256)
    batch = PairCollator(pad_token_id(tok))(enc)
    with torch.no_grad():
        _, n = TargetLoss(model)(model, batch)
    assert int(n) == sum(target_count(e.labels, IGNORE_INDEX) for e in enc)


def test_a_step_of_accumulated_micro_batches_is_the_mean_over_all_its_target_tokens(single_thread):
    """Micro-batches of unequal token counts: the step's gradient is that of sum(token losses) / tokens, not
    the mean of the micro-batch means (the logged norm is taken before clipping)."""
    run = _runner()
    config = replace(run.CONFIG, epochs=1, grad_accum=2, max_grad_norm=None)
    model, tok = run._adapted("lora_ga")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, tok, run.PAIRS, (), config)
    first = list(LengthGroupedBatches([len(e.input_ids) for e in encode_training_pairs(tok, run.PAIRS, 256)],
                                      config.batch_size, seed=config.seed))[:2]
    model.load_state_dict(start)
    enc = encode_training_pairs(tok, run.PAIRS, 256)
    loss_fn, collate = TargetLoss(model), PairCollator(pad_token_id(tok))
    sums, counts = zip(*(loss_fn.summed(model, collate([enc[i] for i in rows])) for rows in first))
    assert counts[0] != counts[1]  # otherwise both normalisations agree
    (sum(sums) / sum(counts)).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert result.history.steps[0].grad_norm == pytest.approx(float(norm), rel=1e-5)
    assert result.history.steps[0].loss == pytest.approx(float(sum(sums).detach() / sum(counts)), rel=1e-6)


def _assert_same_run(one: dict, two: dict, method: str) -> None:
    # Adam divides by the root of its second moment, so a weight whose gradients are still tiny (LoRA's A
    # right after B left zero) moves by a step of order lr whatever the gradient's size: float rounding of
    # the gradient shows in such weights at ~1e-5, not 1e-7 (1.7e-5 on PyTorch's portable kernels,
    # ATEN_CPU_CAPABILITY=default, with the losses still equal to 1e-7). A wrong reduction moves them by
    # ~lr per step, two orders above this bound; the losses and norms below are held to 1e-5 relative.
    torch.testing.assert_close(two["weights"], one["weights"], rtol=1e-4, atol=5e-5, msg=method)
    h1, h2 = one["history"], two["history"]
    assert len(h1["steps"]) == len(h2["steps"]) == 6
    for s1, s2 in zip(h1["steps"], h2["steps"]):
        for key in ("loss", "grad_norm", "lr"):
            assert s2[key] == pytest.approx(s1[key], rel=1e-5), (method, key)
        assert s2["lam"] == pytest.approx(s1["lam"], abs=1e-6), method
        assert s2["phi"] == pytest.approx(s1["phi"], abs=1e-5), method
        assert (s1["mixer_loss"] is None) == (s2["mixer_loss"] is None)
        if s1["mixer_loss"] is not None:
            assert s2["mixer_loss"] == pytest.approx(s1["mixer_loss"], rel=1e-5), method
    assert h2["initial_val_loss"] == pytest.approx(h1["initial_val_loss"], rel=1e-6)
    for e1, e2 in zip(h1["epochs"], h2["epochs"]):
        assert e2["val_loss"] == pytest.approx(e1["val_loss"], rel=1e-6), method
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], rel=1e-6), method


def test_two_processes_train_every_method_as_one_does(tmp_path, free_port):
    threads = torch.get_num_threads()
    try:
        assert _runner().run(tmp_path / "one") == 0
    finally:
        torch.set_num_threads(threads)
    # torchrun starts the two processes; with no accelerator they join as CPU processes through gloo.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), str(RUNNER), str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = torch.load(tmp_path / "one" / "train.pt", weights_only=False)
    two = torch.load(tmp_path / "two" / "train.pt", weights_only=False)
    assert (one["processes"], two["processes"]) == (1, 2)
    assert list(two["methods"]) == ["lora", "lora_ga", "boft", "hybrid", "hybrid_learned", "unitary_full"]
    for method, run in two["methods"].items():
        _assert_same_run(one["methods"][method], run, method)
        first, second = run["processes"]  # each process's own copy: lam, phi and weights, bit for bit
        assert first["lam"] == second["lam"] and first["phi"] == second["phi"], method
        assert all(torch.equal(first["weights"][k], second["weights"][k]) for k in first["weights"]), method
        if method.startswith("hybrid"):
            assert len(next(iter(first["lam"].values()))) == 6  # one lam per step, on each process
