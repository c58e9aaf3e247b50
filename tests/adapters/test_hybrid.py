"""Hybrid mixing: lam from unscaled branch gradients, EMA, clamp, fixed and annealed schedules, history."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import adapted, inputs
from torch import nn

from govtune.adapters import AdapterConfig, after_backward, hybrid_layers, lam_history, mixing
from govtune.adapters.hybrid import HybridLayer


def layer(**overrides) -> HybridLayer:
    torch.manual_seed(0)
    config = AdapterConfig(method="hybrid", r=4, **overrides)
    h = HybridLayer(nn.Linear(32, 32), config, "proj")
    h.init_from_gradient(torch.randn(32, 32))
    return h


def set_grads(h: HybridLayer, lora: float, boft: float) -> None:
    """Gradients whose norms are `lora` and `boft`, as autograd would leave them (mixing factors included)."""
    for params, norm in ((h.lora_parameters(), lora), (h.boft_parameters(), boft)):
        total = sum(p.numel() for p in params)
        for p in params:
            p.grad = torch.full_like(p, norm / total ** 0.5)


def test_raw_rule_divides_out_the_mixing_factors():
    h = layer(lam_ema=0.0, lam_min=0.0, lam_init=0.2)
    # Equal unscaled branch gradients g: autograd reports lam * g and (1 - lam) * g.
    set_grads(h, lora=0.2 * 3.0, boft=0.8 * 3.0)
    assert h.update_lam(0.0) == pytest.approx(0.5, abs=1e-6)  # the naive rule would give 0.2 and stay stuck


def test_lam_follows_the_growing_branch_within_the_clamp():
    h = layer(lam_ema=0.5, lam_min=0.1)
    for _ in range(30):
        lam = h.lam_value
        set_grads(h, lora=lam * 100.0, boft=(1 - lam) * 1.0)  # LoRA branch gradient 100x larger
        h.update_lam(0.0)
    assert h.lam_value == pytest.approx(0.9, abs=1e-6)  # clamped at 1 - lam_min
    assert all(0.1 <= v <= 0.9 for v in h.lam_history)
    assert h.lam_history[0] > 0.5 and h.lam_history == sorted(h.lam_history)
    for _ in range(30):
        lam = h.lam_value
        set_grads(h, lora=lam * 1.0, boft=(1 - lam) * 100.0)
        h.update_lam(0.0)
    assert h.lam_value == pytest.approx(0.1, abs=1e-6)


def test_ema_smooths():
    h = layer(lam_ema=0.9, lam_min=0.0, lam_init=0.5)
    set_grads(h, lora=0.5 * 1.0, boft=0.0)  # raw lam = 1
    assert h.update_lam(0.0) == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)


def test_fixed_and_anneal_schedules():
    fixed = layer(lam_schedule="fixed", lam_fixed=0.25)
    assert fixed.lam_value == 0.25
    set_grads(fixed, lora=10.0, boft=0.1)
    assert fixed.update_lam(0.5) == 0.25
    anneal = layer(lam_schedule="anneal")
    assert anneal.lam_value == 0.75
    got = [anneal.update_lam(p) for p in (0.0, 0.5, 1.0)]  # no gradients needed
    assert got == pytest.approx([0.75, 0.5, 0.25])
    assert anneal.lam_history == pytest.approx([0.75, 0.5, 0.25])


def test_lam_changes_the_forward_and_is_detached():
    h = layer()
    with torch.no_grad():
        h.boft_R.skew.normal_(0, 0.2)
        h.lora_B.add_(0.1)
    x = torch.randn(3, 32)
    y1 = h(x)
    h.set_lam(0.8)
    y2 = h(x)
    assert (y1 - y2).abs().max() > 1e-3
    y0 = h.base_layer(x)
    lowrank = x @ h.delta_from_start().T
    expected = y0 + 0.8 * lowrank + 0.2 * (h.boft_R(y0) - y0)
    torch.testing.assert_close(y2, expected, atol=1e-5, rtol=1e-5)
    assert not h.lam.requires_grad


def test_after_backward_on_a_model_logs_every_layer():
    model, _ = adapted("tiny-llama", "hybrid", lam_min=0.05)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(3):
        ids = inputs(step)
        model(input_ids=ids, labels=ids).loss.backward()
        lams = after_backward(model, progress=step / 2)
        opt.step()
        opt.zero_grad()
        assert lams == mixing(model)
    history = lam_history(model)
    assert len(history) == 8 and all(len(v) == 3 for v in history.values())
    assert all(0.05 <= v <= 0.95 for vs in history.values() for v in vs)
    assert any(abs(vs[-1] - 0.5) > 1e-4 for vs in history.values())


def test_after_backward_without_gradients_says_when_to_call_it():
    model, _ = adapted("tiny-llama", "hybrid")
    with pytest.raises(ValueError, match="after loss.backward"):
        after_backward(model, 0.0)
    with pytest.raises(ValueError, match="progress"):
        after_backward(model, 2.0)


@pytest.mark.parametrize("cls", ["boft", "hybrid"])
def test_recomputing_the_rotated_weight_gives_the_same_gradients_and_stores_no_copy(cls):
    from govtune.adapters.boft import BoftLayer

    grads, stored = [], []
    for recompute in (True, False):
        torch.manual_seed(0)
        config = AdapterConfig(method=cls, r=4, boft_checkpoint=recompute)
        base = nn.Linear(20, 32)
        h = HybridLayer(base, config, "p") if cls == "hybrid" else BoftLayer(base, config, "p")
        if cls == "hybrid":
            h.init_from_gradient(torch.randn(32, 20))
        with torch.no_grad():
            h.boft_R.skew.normal_(0, 0.3)
        x = torch.randn(7, 20, requires_grad=True)
        shapes = []

        def pack(t):
            if t.untyped_storage().data_ptr() != base.weight.untyped_storage().data_ptr():
                shapes.append(t.numel())  # views of the frozen weight itself cost nothing
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = h(x)
        y.pow(2).sum().backward()
        grads.append([x.grad] + [p.grad for p in h.parameters() if p.requires_grad])
        stored.append(shapes.count(32 * 20))  # copies of the (d_out x d_in) rotated weight, in any view
        assert 7 * 32 not in shapes  # no (tokens x d_out) activation either way
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert stored[0] == 0 < stored[1]  # recomputed: R W0 is rebuilt in backward, not kept


@pytest.mark.parametrize("recompute", [True, False])
def test_forward_and_gradients_equal_the_branch_formula(recompute):
    """The low-rank term folded into the weight gives the paper's per-token form, values and gradients:
    y = y0 + lam s (B A - B0 A0) x + (1 - lam)(R y0 - y0)."""
    torch.manual_seed(0)
    base = nn.Linear(24, 32)
    h = HybridLayer(base, AdapterConfig(method="hybrid", r=4, boft_checkpoint=recompute), "p")
    h.init_from_gradient(torch.randn(32, 24))
    with torch.no_grad():
        h.boft_R.skew.normal_(0, 0.3)
        h.lora_A.add_(0.1 * torch.randn_like(h.lora_A))
        h.lora_B.add_(0.1 * torch.randn_like(h.lora_B))
    h.set_lam(0.3)
    x = torch.randn(5, 7, 24, dtype=torch.float64)
    h.double()
    params = [h.lora_A, h.lora_B, *h.boft_parameters()]

    y = h(x)
    got = torch.autograd.grad(y.pow(2).sum(), params)
    y0 = base(x)
    r = h.boft_R.matrix()
    delta = (x @ h.lora_A.T) @ h.lora_B.T - (x @ h.lora_A0.T) @ h.lora_B0.T
    want_y = y0 + 0.3 * h.scaling * delta + 0.7 * (y0 @ r.T - y0)
    want = torch.autograd.grad(want_y.pow(2).sum(), params)
    torch.testing.assert_close(y, want_y, atol=1e-10, rtol=1e-10)
    for g, w in zip(got, want):
        assert g.abs().max() > 0
        torch.testing.assert_close(g, w, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("cls", ["boft", "hybrid", "hybrid_learned"])
def test_bf16_autocast_trains_and_recomputing_matches_the_stored_weight(cls):
    """Under autocast (bf16 training, TRL's default) the rotated weight is built in bf16; backward rebuilds it
    under the same autocast, so recomputing gives the gradients of storing it, and both are close to float32."""
    from govtune.adapters.boft import BoftLayer
    from govtune.adapters.mixer import mixer_forward

    grads = {}
    for recompute, autocast in ((True, True), (False, True), (True, False)):
        torch.manual_seed(0)
        schedule = {"lam_schedule": "learned"} if cls == "hybrid_learned" else {}
        config = AdapterConfig(method=cls.split("_")[0], r=4, boft_checkpoint=recompute, **schedule)
        base = nn.Linear(20, 32)
        h = BoftLayer(base, config, "p") if cls == "boft" else HybridLayer(base, config, "p")
        if cls != "boft":
            h.init_from_gradient(torch.randn(32, 20))
        with torch.no_grad():
            h.boft_R.skew.normal_(0, 0.3)
        x, probe = torch.randn(7, 20), torch.randn(7, 32)  # not ||y||^2: a rotation leaves that unchanged
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            if cls == "hybrid_learned":  # lam a bf16-castable function of phi: the mixer's forward
                with mixer_forward(h) as phis:
                    y = h(x)
                    loss = (y.float() * probe).sum()
                    params = [*phis, *(p for p in h.parameters() if p.requires_grad)]
                    grads[recompute, autocast] = torch.autograd.grad(loss, params)
                continue
            y = h(x)
        assert y.dtype == (torch.bfloat16 if autocast else torch.float32)
        params = [p for p in h.parameters() if p.requires_grad]
        grads[recompute, autocast] = torch.autograd.grad((y.float() * probe).sum(), params)
    for a, b, c in zip(grads[True, True], grads[False, True], grads[True, False]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)  # the same bf16 weight, rebuilt
        assert a.abs().max() > 0
        torch.testing.assert_close(a.float(), c, atol=0.05 * c.abs().max().item(), rtol=0.05)


def test_the_batched_update_equals_each_layers_own():
    """after_backward updates every adaptive layer from one pass over all gradients; each lam equals what the
    layer's own update_lam gives from the same gradients (float32 norms, summed in another order)."""
    model, _ = adapted("tiny-llama", "hybrid", lam_min=0.05)
    ids = inputs(0)
    model(input_ids=ids, labels=ids).loss.backward()
    layers = list(hybrid_layers(model).values())
    # one layer's LoRA-GA branch without gradients: the BOFT branch alone decides its share
    for p in layers[0].lora_parameters():
        p.grad = None
    own = []
    for h in layers:
        before = h.lam_value
        own.append(h.update_lam(0.0))
        h.set_lam(before)
        h.lam_history.clear()
    batched = after_backward(model, 0.0)
    assert list(batched.values()) == pytest.approx(own, rel=1e-6, abs=1e-9)
    assert [float(h.lam) for h in layers] == pytest.approx(own, rel=1e-6)  # the saved buffer follows
    assert all(len(h.lam_history) == 1 for h in layers)
    assert any(abs(v - 0.5) > 1e-4 for v in own)  # the gradients moved lam: the comparison is not at rest
