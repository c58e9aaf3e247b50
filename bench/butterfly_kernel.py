"""Forward + backward cost of the BOFT rotation: govtune's butterfly kernel vs PEFT's dense path.

Side by side in one process, on the same activations (default 512 x 576, SmolLM2's hidden size):
  - govtune ButterflyOrthogonal, m = 1 and m = 3 (b = 8): R's dense G x G groups (G = b 2^(m-1)) in one
    batched product, the default for G <= 256; and for m = 3 also the butterfly path (m index gathers
    and batched b x b block products on the activations), which larger groups use;
  - PEFT's BOFT rotation path with the same parameters: Cayley blocks, dense block_diag, dense
    permutation products P BD P^T, their product, then x @ R (peft/tuners/boft/layer.py, forward);
    PEFT itself runs m > 1 only with its CUDA kernel, which only replaces block_diag;
  - a plain dense matmul x @ W of the same size (what a dense d x d adapter would cost);
  - the unitary operators on the same activations, for reference.
Times are medians over interleaved rounds (each round times every method once), so load from other
processes hits all methods alike; ratios are of medians, against PEFT's path with the same m. The
minimum over rounds is shown beside them: on a shared machine it is the closer estimate of the idle cost.
(torch.utils.benchmark.Timer measures one statement at a time, so it cannot interleave methods.)

    PYTHONPATH=src python bench/butterfly_kernel.py            # writes bench/results/butterfly_kernel.{json,md}
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from govtune.adapters.butterfly import ButterflyOrthogonal
from govtune.adapters.unitary_ops import DenseUnitary, StructuredUnitary
from govtune.atomic import atomic_write_text
from govtune.machine_load import MachineLoad, describe

RESULTS = Path(__file__).resolve().parent / "results"


def peft_rotation(skew: torch.Tensor, features: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """PEFT's BOFT forward path for a (m, k, b, b) parameter, built from PEFT's own helpers."""
    from peft.tuners.boft.layer import BOFTLayer

    m, k, b, _ = skew.shape
    perms = [BOFTLayer.block_butterfly_perm(None, features, k // 2**i, b // 2, m - 1) for i in range(m)]
    boft_p = torch.stack([BOFTLayer.perm2mat(None, p) for p in perms]).to(skew.device)  # buffer, as in PEFT

    def apply(x: torch.Tensor) -> torch.Tensor:
        blocks = BOFTLayer.cayley_batch(None, skew.view(m * k, b, b)).view(m, k, b, b)
        block_diagonal = torch.stack([torch.block_diag(*torch.unbind(blocks[i])) for i in range(m)])
        p = boft_p.to(x)
        mats = torch.bmm(p, torch.bmm(block_diagonal, p.permute(0, 2, 1)))
        rotation = mats[0]
        for i in range(1, m):
            rotation = mats[i] @ rotation
        return x @ rotation

    return apply


def saved_bytes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward (unique storages), the activation-memory cost of a method."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(seen.values()) - x.untyped_storage().nbytes() * (x.untyped_storage().data_ptr() in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--features", type=int, default=576)
    parser.add_argument("--block-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--iters", type=int, default=5, help="iterations per method per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    device, d = torch.device(args.device), args.features
    x = torch.randn(args.rows, d, device=device, requires_grad=True)
    grad_out = torch.randn(args.rows, d, device=device)

    methods: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], list[torch.Tensor]]] = {}
    for m in (1, 3):
        ours = ButterflyOrthogonal(d, m, args.block_size).to(device)
        with torch.no_grad():
            ours.skew.normal_(0.0, 0.1)
        methods[f"govtune m={m}"] = (ours, [ours.skew])
        if m > 1:  # the same R applied factor by factor on the activations (what G > DENSE_GROUP_MAX runs)
            path = copy.deepcopy(ours)
            path.dense_groups = False
            torch.testing.assert_close(path(x), ours(x), rtol=1e-5, atol=1e-5)
            methods[f"govtune m={m} butterfly path"] = (path, [path.skew])
        skew = ours.skew.detach().clone().requires_grad_(True)
        with torch.no_grad():
            reference = peft_rotation(skew, d)(x)
        torch.testing.assert_close(ours(x), reference, rtol=1e-4, atol=1e-4)  # same map, or the timing is moot
        methods[f"peft m={m}"] = (peft_rotation(skew, d), [skew])
    weight = torch.randn(d, d, device=device, requires_grad=True)
    methods["dense matmul"] = (lambda t: t @ weight, [weight])
    structured = StructuredUnitary(d).to(device)
    methods["structured unitary"] = (structured, list(structured.parameters()))
    dense_unitary = DenseUnitary(d).to(device)
    methods["dense unitary"] = (dense_unitary, list(dense_unitary.parameters()))

    def step(fn: Callable[[torch.Tensor], torch.Tensor], params: list[torch.Tensor]) -> None:
        fn(x).backward(grad_out)
        x.grad = None
        for p in params:
            p.grad = None

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for fn, params in methods.values():  # warm-up
        for _ in range(3):
            step(fn, params)
    times: dict[str, list[float]] = {name: [] for name in methods}
    machine = MachineLoad()
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for name, (fn, params) in methods.items():
            sync()
            start = time.perf_counter()
            for _ in range(args.iters):
                step(fn, params)
            sync()
            times[name].append((time.perf_counter() - start) / args.iters * 1e3)

    # The dense unitary's own update (matrix_exp and drift check on h x h complex128), per call.
    step_times = []
    for _ in range(max(3, args.rounds // 3)):
        dense_unitary(x).backward(grad_out)
        x.grad = None
        sync()
        start = time.perf_counter()
        dense_unitary.riemannian_step(1e-4)
        sync()
        step_times.append((time.perf_counter() - start) * 1e3)
    load = machine.result()

    median = {name: statistics.median(t) for name, t in times.items()}
    rows = []
    for name, (fn, params) in methods.items():
        peft_name = f"peft m={name.split('m=')[1].split()[0]}" if name.startswith("govtune") else None
        rows.append(
            {
                "method": name,
                "fwd_bwd_ms": round(median[name], 4),
                "ms_iqr": [round(q, 4) for q in statistics.quantiles(times[name], n=4)[::2]],
                "fwd_bwd_ms_min": round(min(times[name]), 4),
                "vs_peft_same_m": round(median[peft_name] / median[name], 2) if peft_name else None,
                "vs_dense_matmul": round(median[name] / median["dense matmul"], 2),
                "saved_for_backward_mb": round(saved_bytes(fn, x) / 2**20, 3),
                "trainable": sum(p.numel() for p in params),
            }
        )
    result = {
        "config": {
            "rows": args.rows,
            "features": d,
            "block_size": args.block_size,
            "rounds": args.rounds,
            "iters": args.iters,
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
        },
        "results": rows,
        "riemannian_step_ms": round(statistics.median(step_times), 3),
        "riemannian_reprojections": dense_unitary.reprojections,
        "machine_load": load,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "butterfly_kernel.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "butterfly_kernel.md", _markdown(result))
    print(_markdown(result))


def _markdown(result: dict) -> str:
    c = result["config"]
    lines = [
        f"# BOFT rotation, forward + backward ({c['rows']} x {c['features']} activations, b = {c['block_size']})",
        "",
        f"{c['device']}, torch {c['torch']}, {c['threads']} threads; median of {c['rounds']} interleaved rounds x "
        f"{c['iters']} iterations.",
        "",
        describe(result["machine_load"]),
        "",
        "| method | fwd+bwd ms (median) | IQR ms | min ms | PEFT (same m) / this | this / dense matmul "
        "| saved for bwd MB | trainable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        vs = f"{r['vs_peft_same_m']:.2f}x" if r["vs_peft_same_m"] is not None else "-"
        lines.append(
            f"| {r['method']} | {r['fwd_bwd_ms']:.3f} | {r['ms_iqr'][0]:.3f}-{r['ms_iqr'][1]:.3f} "
            f"| {r['fwd_bwd_ms_min']:.3f} | {vs} "
            f"| {r['vs_dense_matmul']:.2f} | {r['saved_for_backward_mb']:.3f} | {r['trainable']} |"
        )
    lines += [
        "",
        f"DenseUnitary.riemannian_step (h = {c['features'] // 2}, complex128 matrix_exp + drift check): "
        f"{result['riemannian_step_ms']:.1f} ms per call (median), "
        f"{result['riemannian_reprojections']} re-projections.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*CUDA extension.*")
    main()
