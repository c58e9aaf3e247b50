"""LoRA-GA (Wang et al., 2024): LoRA initialised from the full-weight gradient.

1. G = mean over N calibration batches of dL/dW0, per target layer, with memory bounded by one layer's
   gradient at a time: a post-accumulate-grad hook adds each weight's gradient to a CPU accumulator and
   frees it at once, so no full set of gradients ever sits on the accelerator.
2. Rank-2r randomised SVD G ~ U S V^T, with each singular pair's sign fixed (`svd_flip`), so one gradient
   gives one initialisation on every machine.
3. "arb2r" (the official code's default): A0 = V[:, :r]^T, B0 = U[:, r:2r], both scaled by
   d_out^(1/4) / sqrt(gamma). "sigma_sqrt" (the papers' eq. 8, read with shapes that fit y = W0 x + s B A x):
   B0 = U_r S_r^(1/2), A0 = S_r^(1/2) V_r^T, so that B0 A0 is the rank-r truncation of G.
4. Offset the frozen weight, W0 <- W0 - s B0 A0, so the output at step 0 is unchanged. A0 and B0 are saved
   with the adapter (persistent buffers): loading onto the original base re-applies the same offset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from itertools import islice

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from govtune.adapters.base import SUPPORTED_LAYERS
from govtune.adapters.lora import LoraLayer, LowRankBranch, add_lowrank
from govtune.quantization import is_quantized
from govtune.text.target_loss import TargetLoss


def ga_init(grad: torch.Tensor, r: int, *, gamma: float = 16.0, direction: str = "arb2r", niter: int = 4,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(A0 (r, d_in), B0 (d_out, r)) from a gradient G (d_out, d_in), in float32."""
    d_out, d_in = grad.shape
    need = 2 * r if direction == "arb2r" else r
    if need > min(d_out, d_in):
        raise ValueError(f"LoRA-GA {direction!r} needs {need} singular vectors but the layer is {d_out} x {d_in}: "
                         f"use r <= {min(d_out, d_in) // (2 if direction == 'arb2r' else 1)}")
    # The official code oversamples to 4r columns; randomised SVD is accurate for the leading 2r.
    q = min(4 * r, d_out, d_in)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the random range finder is seeded: same calibration, same adapter
        u, s, v = torch.svd_lowrank(grad.float(), q=q, niter=niter)  # u (d_out, q), s (q,), v (d_in, q)
    u, v = svd_flip(u, v)
    if direction == "arb2r":
        scale = d_out ** 0.25 / gamma ** 0.5
        a0 = v[:, :r].T * scale
        b0 = u[:, r:2 * r] * scale
    else:
        root = s[:r].sqrt()
        a0 = root[:, None] * v[:, :r].T
        b0 = u[:, :r] * root
    return a0.contiguous(), b0.contiguous()


def svd_flip(u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each singular pair's sign fixed as scikit-learn's `svd_flip` fixes it: the largest-magnitude entry of
    the left vector u[:, j] is positive, and v[:, j] flips with it (u s v^T is unchanged).

    An SVD's signs are arbitrary and differ between CPU kernels (AVX2 against AVX-512, or another BLAS):
    without this, the same gradient gives a different LoRA-GA adapter on another machine, since A0 and B0
    come from different singular pairs and their product changes with each sign."""
    rows = u.abs().argmax(dim=0)
    signs = torch.sign(u[rows, torch.arange(u.shape[1], device=u.device)])
    signs[signs == 0] = 1
    return u * signs, v * signs


def _to_device(batch: Mapping, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def estimate_gradients(model: nn.Module, layers: Mapping[str, nn.Module], calibration: Iterable[Mapping],
                       max_batches: int, progress: bool = True) -> dict[str, torch.Tensor]:
    """Mean gradient of the loss w.r.t. each named layer's weight, as (d_out, d_in) float32 on the CPU.

    The loss of a batch is the mean cross-entropy of its target tokens (`labels` other than -100), the value
    transformers' `model(**batch).loss` gives, computed as training computes it (`TargetLoss`: logits only
    where a target is predicted, which with a large vocabulary is most of the saving). Runs in eval mode (no
    dropout), so the estimate is deterministic given the batches."""
    for name, layer in layers.items():
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise ValueError(f"{name}: LoRA-GA needs nn.Linear or Conv1D targets, got {type(layer).__name__}")
    saved_flags = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    acc = {name: torch.zeros(_stored_shape(layer), dtype=torch.float32) for name, layer in layers.items()}
    handles = []

    def make_hook(name: str):
        def hook(p: torch.Tensor) -> None:
            acc[name].add_(p.grad.detach().to("cpu", torch.float32))
            p.grad = None  # free at once: at most one layer's gradient is alive on the device
        return hook

    device = next(model.parameters()).device
    loss_fn = TargetLoss(model)
    n = 0
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for name, layer in layers.items():
            if is_quantized(layer):
                handles.append(_output_gradient_hook(name, layer, acc))
            else:
                layer.weight.requires_grad_(True)
                handles.append(layer.weight.register_post_accumulate_grad_hook(make_hook(name)))
        if any(is_quantized(layer) for layer in layers.values()):
            # Nothing upstream requires grad: make the hidden states do, so the backward reaches every layer
            handles.append(model.get_input_embeddings().register_forward_hook(
                lambda module, args, out: out.requires_grad_(True)))
        model.eval()
        total = min(max_batches, len(calibration)) if hasattr(calibration, "__len__") else max_batches
        batches = islice(iter(calibration), max_batches)
        for batch in tqdm(batches, total=total, desc="LoRA-GA gradient", disable=not progress):
            if not isinstance(batch, Mapping) or "labels" not in batch:
                raise ValueError("LoRA-GA calibration batches must be dicts of tensors the model's forward "
                                 "accepts, including 'labels' (e.g. input_ids, attention_mask, labels)")
            loss, _ = loss_fn(model, _to_device(batch, device))
            loss.backward()
            n += 1
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved_flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.train(was_training)
    if n == 0:
        raise ValueError("LoRA-GA calibration yielded no batches: pass a non-empty iterable of batches")
    # Conv1D stores its weight as (d_in, d_out): return every gradient as (d_out, d_in).
    return {name: (acc[name] / n if isinstance(layer, nn.Linear) else (acc[name] / n).T.contiguous())
            for name, layer in layers.items()}


class GradientCache:
    """The last gradient estimate, kept under what determines it: every byte of the target layers' weights,
    the calibration batches and how many are used. Two adapters started from the same base weights and the
    same batches (a study's LoRA-GA and hybrid cells of one seed and sample) then estimate the gradient once,
    the costliest part of their initialisation; anything different misses and is estimated anew, so a hit
    gives exactly the tensors a fresh estimate would. One entry: 4 bytes per targeted weight (116 MB for Gemma
    3 270M's attention projections). Lives as long as its owner (a study runner, in one process)."""

    def __init__(self):
        self._key: str | None = None
        self._grads: dict[str, torch.Tensor] = {}
        self.hits = 0

    def estimate(self, model: nn.Module, layers: Mapping[str, nn.Module], calibration: Iterable[Mapping],
                 max_batches: int, progress: bool = True) -> dict[str, torch.Tensor]:
        """`estimate_gradients`' result (copies: the caller may change them)."""
        batches = list(islice(iter(calibration), max_batches))
        key = _estimate_key(layers, batches, max_batches)
        if key == self._key:
            self.hits += 1
        else:
            self._key, self._grads = None, {}  # free the old entry before the new estimate is made
            self._grads = estimate_gradients(model, layers, batches, max_batches, progress=progress)
            self._key = key
        return {name: g.clone() for name, g in self._grads.items()}


def _estimate_key(layers: Mapping[str, nn.Module], batches: list[Mapping], max_batches: int) -> str:
    """sha256 of every weight byte of the layers (by name) and of every tensor of the batches."""
    h = hashlib.sha256(f"{max_batches};".encode())
    for name in sorted(layers):
        layer = layers[name]
        h.update(f"{name}:{type(layer).__name__}:{_stored_shape(layer)};".encode())
        for t in (layer.state_dict().values() if is_quantized(layer) else [layer.weight]):
            _hash_tensor(h, t)
    for batch in batches:
        for k in sorted(batch):
            h.update(f"{k};".encode())
            if isinstance(batch[k], torch.Tensor):
                _hash_tensor(h, batch[k])
    return h.hexdigest()


def _hash_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _stored_shape(layer: nn.Module) -> tuple[int, ...]:
    return (layer.out_features, layer.in_features) if is_quantized(layer) else tuple(layer.weight.shape)


def _output_gradient_hook(name: str, layer: nn.Module, acc: dict[str, torch.Tensor]):
    """For a quantised layer, whose integer weight takes no gradient: dL/dW = g^T x summed over tokens, from
    the layer's input x and the gradient g of its output, added to acc[name] when g arrives in backward.
    The forward multiplied x by the dequantised weight, so this is the gradient at the dequantised weight,
    the one a float model holding those weights gives (what autograd's weight gradient computes too)."""

    def forward_hook(module, args, output):
        x = args[0].detach()

        def grad_hook(g: torch.Tensor) -> None:
            gw = g.reshape(-1, g.shape[-1]).float().T @ x.reshape(-1, x.shape[-1]).float()
            acc[name].add_(gw.cpu())

        if output.requires_grad:
            output.register_hook(grad_hook)

    return layer.register_forward_hook(forward_hook)


class GradientStart(LowRankBranch):
    """LowRankBranch that starts at the gradient-derived (A0, B0), kept as persistent buffers: a saved
    adapter carries its start, and B A - B0 A0 (the branch's change since then) is at hand. Used by
    LoRA-GA, which offsets W0 by s B0 A0, and by the hybrid, which keeps the offset inside the branch."""

    lora_A0: torch.Tensor
    lora_B0: torch.Tensor

    def _add_lowrank(self, r: int) -> None:
        super()._add_lowrank(r)
        # Zero until `init_from_gradient` or a load: s B0 A0 is then zero as well.
        self.register_buffer("lora_A0", torch.zeros_like(self.lora_A))
        self.register_buffer("lora_B0", torch.zeros_like(self.lora_B))

    def offset(self) -> torch.Tensor:
        """s B0 A0, (d_out, d_in), float32."""
        return self.scaling * (self.lora_B0.float() @ self.lora_A0.float())

    def delta_from_start(self) -> torch.Tensor:
        """s (B A - B0 A0), (d_out, d_in), float32."""
        return self.scaling * (self.lora_B.float() @ self.lora_A.float()
                               - self.lora_B0.float() @ self.lora_A0.float())

    def factors_from_start(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([A; A0] (2r, d_in), [B, -B0] (d_out, 2r)): B A - B0 A0 as one rank-2r product."""
        return torch.cat([self.lora_A, self.lora_A0], dim=0), torch.cat([self.lora_B, -self.lora_B0], dim=1)

    @torch.no_grad()
    def _start_at(self, a0: torch.Tensor, b0: torch.Tensor) -> None:
        """A0 = A = a0, B0 = B = b0."""
        for dst, src in ((self.lora_A0, a0), (self.lora_B0, b0), (self.lora_A, a0), (self.lora_B, b0)):
            dst.copy_(src)

    def init_from_gradient(self, grad: torch.Tensor) -> None:
        c = self.config
        a0, b0 = ga_init(grad, self.r, gamma=c.ga_gamma, direction=c.ga_direction, niter=c.ga_svd_niter)
        self._start_at(a0.to(self.lora_A.device), b0.to(self.lora_B.device))


class LoraGALayer(GradientStart, LoraLayer):
    """LoRA whose A, B start at the gradient-derived (A0, B0), with W0 offset by s B0 A0 (the layer is always
    "offset by its own (A0, B0)", zero before the init).

    On a quantised base W0 - s B0 A0 would be a float weight (or a re-quantised one, which moves the output
    at init by the quantisation error): there the offset stays in the branch, as in the hybrid, and the
    forward adds s (B A - B0 A0) x, one rank-2r product instead of rank r."""

    method = "lora_ga"

    def __init__(self, base_layer: nn.Module, config, name: str = ""):
        super().__init__(base_layer, config, name)
        self.offset_in_branch = self.quantized  # fixed at construction: a merge makes the base float

    def adapted_forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.offset_in_branch:
            return super().adapted_forward(x)
        a, b = self.factors_from_start()
        return add_lowrank(self.base_layer(x), F.linear(x, a), b, self.scaling)

    def _merge(self, w, b):
        return (w + self.delta_from_start(), b) if self.offset_in_branch else super()._merge(w, b)

    def _unmerge(self, w, b):
        return (w - self.delta_from_start(), b) if self.offset_in_branch else super()._unmerge(w, b)

    @torch.no_grad()
    def _start_at(self, a0: torch.Tensor, b0: torch.Tensor) -> None:
        if self.merged:
            raise ValueError(f"{self.name}: unmerge the adapter before re-initialising it")
        if self.offset_in_branch:
            super()._start_at(a0, b0)
            return
        self._rewrite_base(lambda w, b: (w + self.offset(), b))  # undo the previous offset
        super()._start_at(a0, b0)
        self._rewrite_base(lambda w, b: (w - self.offset(), b))

    @torch.no_grad()
    def load_adapter_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.check_adapter_state(state)
        self._start_at(state["lora_A0"], state["lora_B0"])  # swaps the offset to the saved one
        super().load_adapter_state_dict(state)
