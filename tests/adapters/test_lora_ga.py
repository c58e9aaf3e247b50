"""LoRA-GA: gradient estimate, init formula against a hand-computed SVD, offset, memory-bounded hooks."""

from __future__ import annotations

import pytest
import torch
from adapter_helpers import adapted, calibration, logits
from torch import nn

from govtune.adapters import adapter_layers, resolve_targets, AdapterConfig
from govtune.adapters.lora_ga import estimate_gradients, ga_init, svd_flip
from govtune.models import tiny_model


def known_gradient(d_out=48, d_in=40, rank=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d_out, rank, generator=g))
    v, _ = torch.linalg.qr(torch.randn(d_in, rank, generator=g))
    s = torch.linspace(10.0, 1.0, rank)  # distinct singular values: the vectors are unique up to sign
    return u @ torch.diag(s) @ v.T, u, s, v


def same_up_to_sign(rows: torch.Tensor, expected: torch.Tensor) -> None:
    signs = torch.sign((rows * expected).sum(dim=1, keepdim=True))
    torch.testing.assert_close(rows * signs, expected, atol=1e-4, rtol=1e-4)


def test_arb2r_matches_the_official_formula():
    grad, u, s, v = known_gradient()
    r, gamma = 4, 16.0
    a, b = ga_init(grad, r, gamma=gamma, direction="arb2r")
    scale = grad.shape[0] ** 0.25 / gamma ** 0.5
    assert a.shape == (r, 40) and b.shape == (48, r)
    same_up_to_sign(a, v[:, :r].T * scale)  # A = V[:, :r]^T * d_out^(1/4) / sqrt(gamma)
    same_up_to_sign(b.T, u[:, r:2 * r].T * scale)  # B = U[:, r:2r] * d_out^(1/4) / sqrt(gamma)


def test_sigma_sqrt_is_the_rank_r_truncation():
    grad, u, s, v = known_gradient()
    r = 4
    a, b = ga_init(grad, r, direction="sigma_sqrt")
    torch.testing.assert_close(b @ a, u[:, :r] @ torch.diag(s[:r]) @ v[:, :r].T, atol=1e-4, rtol=1e-4)


def test_svd_flip_makes_each_left_vector_largest_entry_positive_and_keeps_the_product():
    g = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(30, 6, generator=g))
    v, _ = torch.linalg.qr(torch.randn(20, 6, generator=g))
    s = torch.linspace(5.0, 1.0, 6)
    fu, fv = svd_flip(u, v)
    peak = fu.gather(0, fu.abs().argmax(dim=0, keepdim=True))
    assert (peak > 0).all()
    torch.testing.assert_close(fu @ torch.diag(s) @ fv.T, u @ torch.diag(s) @ v.T)
    signs = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, 1.0])  # any other sign choice maps to the same pairs
    torch.testing.assert_close(svd_flip(u * signs, v * signs), (fu, fv))


@pytest.mark.parametrize("direction", ["arb2r", "sigma_sqrt"])
def test_one_gradient_gives_one_init_whatever_signs_the_svd_kernel_returns(direction, monkeypatch):
    # Another CPU's kernels (AVX2 against AVX-512) may return any sign per singular pair: emulate that.
    grad = known_gradient()[0]
    a_ref, b_ref = ga_init(grad, 4, direction=direction)
    svd = torch.svd_lowrank

    def flipped(*args, **kwargs):
        u, s, v = svd(*args, **kwargs)
        signs = torch.where(torch.arange(u.shape[1]) % 3 == 0, -1.0, 1.0)
        return u * signs, s, v * signs

    monkeypatch.setattr(torch, "svd_lowrank", flipped)
    a, b = ga_init(grad, 4, direction=direction)
    torch.testing.assert_close(a, a_ref)
    torch.testing.assert_close(b, b_ref)


def test_rank_too_large_for_layer():
    with pytest.raises(ValueError, match="use r <= 4"):
        ga_init(torch.randn(8, 16), 5)


def test_gradient_estimate_is_the_mean_full_gradient():
    model, _ = tiny_model("tiny-llama")
    batches = calibration(3)
    targets = resolve_targets(model, AdapterConfig(method="lora_ga"))
    est = estimate_gradients(model, targets, batches, max_batches=3, progress=False)
    weights = [m.weight for m in targets.values()]
    for w in weights:
        w.requires_grad_(True)
    ref = [torch.zeros_like(w) for w in weights]
    for batch in batches:
        for acc, g in zip(ref, torch.autograd.grad(model(**batch).loss, weights)):
            acc += g / 3
    for (name, g), r in zip(est.items(), ref):
        torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-5, msg=name)
    assert all(w.grad is None for w in weights)


def test_hooks_free_each_gradient_at_once():
    model, _ = tiny_model("tiny-llama")
    targets = resolve_targets(model, AdapterConfig(method="lora_ga"))
    alive = []
    # Runs after estimate_gradients' hook (hooks fire in registration order): no gradient is left behind.
    weights = list(targets.values())
    orig = nn.Parameter.register_post_accumulate_grad_hook

    def spy(self, hook):
        def wrapped(p):
            hook(p)
            alive.append(sum(w.weight.grad is not None for w in weights))
        return orig(self, wrapped)

    nn.Parameter.register_post_accumulate_grad_hook = spy
    try:
        estimate_gradients(model, targets, calibration(1), max_batches=1, progress=False)
    finally:
        nn.Parameter.register_post_accumulate_grad_hook = orig
    assert len(alive) == len(targets) and max(alive) == 0
    assert all(p.requires_grad for p in model.parameters())  # the model's own flags are restored


@pytest.mark.parametrize("rslora,scale", [(False, 8 / 4), (True, 8 / 2)])  # alpha 8, r 4: alpha / r, alpha / sqrt(r)
def test_offset_is_applied_to_the_frozen_weight(rslora, scale):
    model, config = adapted("tiny-llama", "lora_ga", alpha=8, use_rslora=rslora)
    assert config.scaling == scale and all(layer.scaling == scale for layer in adapter_layers(model).values())
    base, _ = tiny_model("tiny-llama")
    base_weights = dict(base.named_modules())
    for name, layer in adapter_layers(model).items():
        offset = scale * layer.lora_B0 @ layer.lora_A0
        assert offset.abs().max() > 1e-3
        torch.testing.assert_close(layer.weight, base_weights[name].weight - offset, atol=1e-6, rtol=0)
        torch.testing.assert_close(layer.lora_A, layer.lora_A0)
    torch.testing.assert_close(logits(model), logits(base), atol=2e-5, rtol=0)


def test_calibration_without_labels_is_rejected():
    model, _ = tiny_model("tiny-llama")
    from govtune.adapters import inject

    with pytest.raises(ValueError, match="labels"):
        inject(model, AdapterConfig(method="lora_ga", r=4), calibration=[{"input_ids": torch.ones(1, 4).long()}],
               progress=False)


def test_gradient_of_the_target_loss_with_prompts_and_padding():
    """Calibration rows as training writes them (prompt labels -100, left padding, an attention mask):
    the estimate, computed from the target positions' logits only, equals the gradient of transformers'
    own loss over the full logits."""
    model, _ = tiny_model("tiny-llama")
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(3, 300, (3, 14), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :4], mask[1, :2] = 0, 0  # left padding
    labels = torch.full_like(ids, -100)
    labels[:, -3:] = ids[:, -3:]  # the last three tokens are the target
    labels[2, -3] = -100  # rows with targets of different lengths
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels}
    targets = resolve_targets(model, AdapterConfig(method="lora_ga"))
    est = estimate_gradients(model, targets, [batch], max_batches=1, progress=False)
    weights = [m.weight for m in targets.values()]
    for w in weights:
        w.requires_grad_(True)
    ref = torch.autograd.grad(model(**batch).loss, weights)
    for (name, got), want in zip(est.items(), ref):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_cache_hits_only_on_the_same_weights_and_batches(monkeypatch):
    from govtune.adapters import lora_ga

    model, _ = tiny_model("tiny-llama")
    targets = resolve_targets(model, AdapterConfig(method="lora_ga"))
    fresh = estimate_gradients(model, targets, calibration(2), max_batches=2, progress=False)
    calls = []
    real = lora_ga.estimate_gradients
    monkeypatch.setattr(lora_ga, "estimate_gradients", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = lora_ga.GradientCache()
    first = cache.estimate(model, targets, calibration(2), 2, progress=False)
    again = cache.estimate(model, targets, iter(calibration(2)), 2, progress=False)  # equal batches, new objects
    assert len(calls) == 1 and cache.hits == 1
    for name in fresh:
        assert torch.equal(first[name], fresh[name]) and torch.equal(again[name], fresh[name])
    again[next(iter(again))].add_(1.0)  # a caller's change does not reach the cache
    assert torch.equal(cache.estimate(model, targets, calibration(2), 2, progress=False)[next(iter(fresh))],
                       fresh[next(iter(fresh))])
    cache.estimate(model, targets, calibration(2), 1, progress=False)  # fewer batches: another estimate
    other = calibration(2)
    other[1]["labels"][0, 3] = -100  # one label masked
    cache.estimate(model, targets, other, 2, progress=False)
    with torch.no_grad():
        next(iter(targets.values())).weight[0, 0] += 1e-3  # one weight moved
    cache.estimate(model, targets, other, 2, progress=False)
    assert len(calls) == 4
