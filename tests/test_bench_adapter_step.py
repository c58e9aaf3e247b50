"""bench/adapter_step.py's hybrid rows with one piece switched off: each switches off what it says, and
nothing else."""

import pytest
import torch

from govtune.adapters import hybrid_layers, mixing
from govtune.models import tiny_model


@pytest.fixture
def step(bench_script):
    return bench_script("adapter_step")


def _rows(step, names):
    torch.manual_seed(0)
    base, _ = tiny_model("tiny-llama")
    base.requires_grad_(False)
    ids = torch.randint(3, 300, (2, 12))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    return {n: step.build(n, base, batch) for n in names}, batch


def test_each_piece_row_switches_off_its_piece(step, single_thread):
    runs, batch = _rows(step, ["hybrid", *step.HYBRID_PIECES])
    for run in runs.values():
        with torch.no_grad():  # start away from the gradient init, so B A - B0 A0 != 0
            for layer in hybrid_layers(run.model).values():
                layer.lora_B.add_(0.05)
    with torch.no_grad():
        out = {n: r.model(**batch).logits for n, r in runs.items()}
    torch.testing.assert_close(out["hybrid_branch_lr"], out["hybrid"], rtol=0, atol=0)  # same maths
    torch.testing.assert_close(out["hybrid_fixedlam"], out["hybrid"], rtol=0, atol=0)  # lam 0.5 either way
    assert not torch.allclose(out["hybrid_rank_r"], out["hybrid"])  # B0 A0 left out: timing only
    assert not torch.allclose(out["hybrid_nolowrank"], out["hybrid"])
    for run in runs.values():
        run.step(batch, 0.5, record=True)
    lam0 = {n: 0.5 for n in mixing(runs["hybrid"].model)}
    assert mixing(runs["hybrid"].model) != lam0  # the adaptive update ran
    assert mixing(runs["hybrid_fixedlam"].model) == lam0 and mixing(runs["hybrid_nolamupdate"].model) == lam0
    assert all(len(m.lam_history) == 1 for m in hybrid_layers(runs["hybrid_fixedlam"].model).values())
    assert all(not m.lam_history for m in hybrid_layers(runs["hybrid_nolamupdate"].model).values())
    assert [g["name"] for g in runs["hybrid_branch_lr"].opt.param_groups] == ["lora_ga", "boft"]
    assert len(runs["hybrid"].opt.param_groups) == 1


def test_bf16_rows_run_the_same_method_under_autocast(step, single_thread):
    runs, batch = _rows(step, ["lora", "lora_bf16", "hybrid", "hybrid_bf16", "peft_lora", "peft_lora_bf16"])
    for name in ("lora", "hybrid", "peft_lora"):
        fp32, bf16 = runs[name], runs[f"{name}_bf16"]
        assert not fp32.bf16 and bf16.bf16
        assert type(fp32.model) is type(bf16.model)
        assert sum(p.numel() for p in fp32.params) == sum(p.numel() for p in bf16.params)
        fp32.step(batch, 0.5, record=True)
        bf16.step(batch, 0.5, record=True)
        # the same loss to bf16's precision (8 bits of mantissa), not bit-identical: the matmuls ran in bf16
        assert bf16.loss == pytest.approx(fp32.loss, rel=2e-2) and bf16.loss != fp32.loss
    md = step.report({n: r.result(False) for n, r in runs.items()},
                     {"label": "tiny", "batch": "2 x 12", "loss_on": "", "steps": 1, "warmup": 0, "torch": "x",
                      "threads": 1, "machine_load": {"cpu_count": 2, "load_average_start": [0, 0, 0],
                                                     "load_average_end": [0, 0, 0]}})
    assert "| hybrid |" in md.split("bf16 autocast against float32")[1]
