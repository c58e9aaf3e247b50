"""One training step of every govtune adapter against PEFT, side by side in one process.

Setting "bench" (default): SmolLM2-135M-Instruct (mostly English; the numbers are about cost, not quality),
batch 4 x 128 tokens, q_proj and v_proj, the loss on every token. Setting "demo": the demo study's own, Gemma 3
270M, batch 8 x 112, all four attention projections, the loss (and logits) on the last 16 tokens only, as
govtune's trainer computes it. Both: r = 16, alpha = 32, BOFT m = 3 factors of 8 x 8 blocks. A step is forward + backward +
AdamW step (+ the hybrid lam update, + the Riemannian step for unitary_full). All models are built first
(sharing the frozen weights no method writes), then stepped round robin: 2 warm-up rounds, then the median
of 10 timed rounds, so every method sees the same load of a shared machine.

Memory. PyTorch has no CPU allocator statistics and tracemalloc sees only Python's own allocations, so the
transient memory of a step is read from the process's resident set: glibc is told to serve every
allocation above 128 KiB with mmap (mallopt M_MMAP_THRESHOLD, which also stops it from raising that
threshold), so freed tensors leave the RSS at once, and the kernel's peak-RSS counter (VmHWM) is reset
through /proc/self/clear_refs just before each step. `train_mem_mb` = (peak RSS during the step - RSS
before it: activations, gradients, temporaries) + optimiser state + adapter weights (both counted from
tensor sizes), i.e. the memory training adds on top of the loaded frozen model. For full fine-tuning the
trainable weights are the model itself and are not added.

    python bench/adapter_step.py [--steps 10] [--warmup 2] [--only lora,boft] [--setting bench|demo]
    python bench/adapter_step.py --setting demo --hybrid-pieces   # the hybrid's cost, one piece at a time
    python bench/adapter_step.py --setting demo --bf16            # bf16 autocast beside float32

bf16 (`--bf16`, or rows named `<method>_bf16` in --only): the same step under `torch.autocast("cpu",
torch.bfloat16)`, as `mixed_precision: bf16` trains, beside the float32 rows of the same methods. Only CPUs
with native bf16 (AVX512-BF16, AMX) run it faster; elsewhere bf16 matmuls are emulated and slower. The table
adds each row's final loss, so the numbers can be compared as well as the times.

The hybrid's cost over BOFT, piece by piece (`--hybrid-pieces`, or name the rows in --only): each row below
switches off ONE piece of the hybrid's step, for timing only (some rows no longer compute the hybrid's maths),
and runs round robin with hybrid, boft and PEFT LoRA, so the difference to the `hybrid` row is that piece's
cost: `hybrid_fixedlam` (no gradient-norm pass for lam), `hybrid_nolamupdate` (no lam update at all: minus
`hybrid_fixedlam` = the lam bookkeeping), `hybrid_rank_r` (the weight-sized low-rank product at rank r instead
of 2r), `hybrid_nolowrank` (no low-rank product in the weight), `hybrid_branch_lr` (the branches in their own
optimiser groups, as `lr_branches` trains them: should cost nothing).

Writes bench/results/adapter_step.json and .md (setting demo: adapter_step_demo.json and .md), atomically.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.adapters import (AdapterConfig, after_backward, hybrid_layers, inject,  # noqa: E402
                              optimizer_parameters, riemannian_modules, trainable_parameters)
from govtune.adapters.boft import rotated_linear  # noqa: E402
from govtune.atomic import atomic_write_text  # noqa: E402
from govtune.models import SMOLLM2, load_model  # noqa: E402
from govtune.training.footprint import release_free_memory  # noqa: E402
from govtune.training.optim import param_groups  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from govtune.machine_load import MachineLoad, describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
R, ALPHA, M, B = 16, 32, 3, 8
# Two settings. "bench": SmolLM2, q_proj and v_proj, the loss on every token (the LM head dominates).
# "demo": the demo study's own (configs/demo.yaml): Gemma 3 270M, all four attention projections, batch 8 x
# 112, the loss on the last 16 tokens only with logits computed there alone (as govtune's trainer does with
# `logits_to_keep`), so the adapted layers carry a larger share of the step.
SETTINGS = {
    "bench": {"model": SMOLLM2, "targets": ["q_proj", "v_proj"], "batch": 4, "length": 128, "target_tokens": None,
              "label": "SmolLM2-135M-Instruct (mostly English; cost only)"},
    "demo": {"model": "gemma3-270m", "targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "batch": 8, "length": 112,
             "target_tokens": 16, "label": "Gemma 3 270M (the demo's setting)"},
}
TARGETS = SETTINGS["bench"]["targets"]  # main() sets the chosen setting's
GOVTUNE = ["lora", "lora_ga", "boft", "unitary", "hybrid", "full"]
# Not run by default (the machine is shared): the dense unitary with its Riemannian step, boft / hybrid
# storing the rotated weight R W0 for backward instead of rebuilding it (boft_checkpoint=False), and the
# structured unitary storing its FFT intermediates instead of recomputing U x (unitary_checkpoint=False).
# The hybrid's pieces, each switched off alone (timing only; see the module docstring).
HYBRID_PIECES = {
    "hybrid_fixedlam": "no gradient-norm pass: lam from lam_fixed (the update's bookkeeping stays)",
    "hybrid_nolamupdate": "no lam update at all (no after_backward: no gradient-norm pass, no bookkeeping)",
    "hybrid_rank_r": "the low-rank product in the weight at rank r (B A) instead of 2r ([B, -B0] [A; A0])",
    "hybrid_nolowrank": "no low-rank product in the weight (the LoRA-GA branch gets no gradient)",
    "hybrid_branch_lr": "LoRA-GA and BOFT branches in their own optimiser groups (lr_branches), 10x apart",
}
PEFT = ["peft_lora", "peft_boft", "peft_oft"]
BF16 = ["peft_lora_bf16", "lora_bf16", "boft_bf16", "hybrid_bf16"]  # --bf16: the step under bf16 autocast
OPTIONAL = ["unitary_full", "boft_nockpt", "hybrid_nockpt", "unitary_nockpt", *HYBRID_PIECES, *BF16]
REFERENCE = "peft_lora"
GOALS = {"lora": (1.05, None), "boft": (1.05, 1.10), "hybrid": (1.10, 1.10)}  # (time ratio, memory ratio)

_libc = ctypes.CDLL("libc.so.6")
_libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: large blocks are mmapped and returned on free


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _settle() -> int:
    release_free_memory()
    return _status()["VmRSS"]


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def variant(name: str) -> tuple[str, dict]:
    """(method, extra AdapterConfig fields) of a benchmark row: `boft_nockpt` is boft without recomputation,
    `boft_bf16` boft itself (the autocast is the Run's)."""
    name = name.removesuffix("_bf16")
    if name.endswith("_nockpt"):  # each method reads only its own flag
        return name[: -len("_nockpt")], {"boft_checkpoint": False, "unitary_checkpoint": False}
    if name in HYBRID_PIECES:
        return "hybrid", {"lam_schedule": "fixed"} if name == "hybrid_fixedlam" else {}
    return name, {}


def clone(base, name: str):
    """A copy of `base` that shares the frozen weights the method never writes (memory for ten models)."""
    if name == "full":
        return copy.deepcopy(base)  # every weight trains
    own = tuple(TARGETS) if variant(name)[0] == "lora_ga" else ()  # LoRA-GA offsets its targets in place
    memo = {id(p): p for n, p in base.named_parameters() if not any(f".{t}." in n for t in own)}
    return copy.deepcopy(base, memo)


def build(name: str, base, batch) -> Run:
    model = clone(base, name)
    info: dict = {}
    bf16 = name.endswith("_bf16")
    if name.removesuffix("_bf16") in PEFT:
        from peft import BOFTConfig, LoraConfig, OFTConfig, get_peft_model

        cfg = {"peft_lora": lambda: LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0),
               "peft_boft": lambda: BOFTConfig(boft_block_size=B, boft_n_butterfly_factor=M, target_modules=TARGETS,
                                               boft_dropout=0.0),
               "peft_oft": lambda: OFTConfig(r=0, oft_block_size=B, target_modules=TARGETS,
                                             module_dropout=0.0)}[name.removesuffix("_bf16")]()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = get_peft_model(model, cfg)
        if name == "peft_boft":
            layer = next(m for m in model.modules() if hasattr(m, "boft_R"))
            info["effective_factors"] = int(layer.boft_R["default"].shape[0])
            info["peft_warnings"] = sorted({str(w.message)[:160] for w in caught if "butterfly" in str(w.message)
                                            or "CUDA" in str(w.message)})
        params = [p for p in model.parameters() if p.requires_grad]
        return Run(name, model, params, None, info, bf16=bf16)
    method, extra = variant(name)
    config = AdapterConfig(method=method, r=R, alpha=ALPHA, target_modules=TARGETS, boft_factors=M,
                           boft_block_size=B, ga_batches=2, **extra)
    inject(model, config, calibration=[batch, batch] if method in ("lora_ga", "hybrid") else None, progress=False)
    switch_off_piece(name, model)
    riemannian = riemannian_modules(model)

    def hook(progress: float) -> None:
        if name != "hybrid_nolamupdate":
            after_backward(model, progress)
        for module in riemannian:
            module.riemannian_step(1e-3)

    groups = (param_groups(model, 1e-5, lr_branches={"lora_ga": 1e-6, "boft": 1e-5})
              if name == "hybrid_branch_lr" else None)
    return Run(name, model, optimizer_parameters(model), hook, info, groups, bf16=bf16)


def switch_off_piece(name: str, model) -> None:
    """For the rows that replace a piece of the hybrid's forward (timing only): instance attributes over the
    layer's methods, so the layer class itself is untouched."""
    for layer in hybrid_layers(model).values():
        if name == "hybrid_rank_r":
            layer.factors_from_start = lambda layer=layer: (layer.lora_A, layer.lora_B)
        elif name == "hybrid_nolowrank":
            layer.adapted_forward = lambda x, layer=layer: rotated_linear(layer, layer.boft_R, x, layer.checkpoint,
                                                                          layer.lam_value)


class Run:
    """One method's model and optimiser, stepped in turn with the others."""

    def __init__(self, name, model, params, hook, info, groups=None, bf16: bool = False):
        self.name, self.model, self.params, self.hook, self.info = name, model.train(), params, hook, info
        self.bf16 = bf16
        self.opt = torch.optim.AdamW(groups or params, lr=1e-5)
        self.times: list[float] = []
        self.transient: list[int] = []
        self.loss = float("nan")

    def step(self, batch, progress: float, record: bool) -> None:
        before = _settle()
        _reset_peak()
        t0 = time.perf_counter()
        # as accelerate's mixed_precision="bf16" trains: the forward under autocast, backward outside it
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model(**batch).loss
        loss.backward()
        if self.hook is not None:
            self.hook(progress)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - t0
        peak = _status()["VmHWM"]
        self.loss = loss.item()
        if record:
            self.times.append(elapsed)
            self.transient.append(peak - before)

    def result(self, full: bool) -> dict:
        state = sum(t.numel() * t.element_size() for s in self.opt.state.values() for t in s.values()
                    if isinstance(t, torch.Tensor))
        # Adapter weights add to the frozen model; for full fine-tuning the trainable weights ARE the model.
        weights = 0 if full else sum(p.numel() * p.element_size() for p in self.params)
        transient = statistics.median(self.transient)
        tunable = (trainable_parameters(self.model) if self.name.removesuffix("_bf16") not in PEFT
                   else sum(p.numel() for p in self.params))
        return {"step_s_median": statistics.median(self.times), "step_s_all": self.times,
                "train_mem_mb": (transient + state + weights) / 2**20, "step_peak_mb": transient / 2**20,
                "optimizer_state_mb": state / 2**20, "adapter_weights_mb": weights / 2**20,
                "tunable_params": tunable, "final_loss": self.loss, **self.info}


def report(results: dict, meta: dict) -> str:
    ref = results[REFERENCE]
    lines = ["# Adapter training step: govtune vs PEFT", "",
             f"{meta['label']}, batch {meta['batch']}{meta['loss_on']}, targets "
             f"{', '.join(TARGETS)}, r={R}, alpha={ALPHA}, BOFT m={M}, b={B}; median of {meta['steps']} steps after "
             f"{meta['warmup']} warm-up, torch {meta['torch']} on {meta['threads']} CPU threads.", "",
             describe(meta["machine_load"]), "",
             "| method | step (s) | time / PEFT LoRA | train mem (MB) | mem / PEFT LoRA | tunable params | "
             "params / PEFT LoRA |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['step_s_median']:.3f} | {r['step_s_median'] / ref['step_s_median']:.2f} | "
                     f"{r['train_mem_mb']:.0f} | {r['train_mem_mb'] / ref['train_mem_mb']:.2f} | "
                     f"{r['tunable_params']:,} | {r['tunable_params'] / ref['tunable_params']:.2f} |")
    lines += hybrid_pieces_section(results)
    lines += bf16_section(results)
    goals = GOALS if not any(n in results for n in BF16) else {}
    if not goals:  # eight models in turn load the machine otherwise than the table the goals are read from
        lines += ["", "Goals are read from the float32 table alone (`--setting demo` without --bf16), not here."]
    else:
        lines += ["", "Goals (ratios to PEFT LoRA):", ""]
    for name, (t_goal, m_goal) in goals.items():
        if name not in results:
            continue
        r = results[name]
        t = r["step_s_median"] / ref["step_s_median"]
        m = r["train_mem_mb"] / ref["train_mem_mb"]
        verdict = f"- {name}: time {t:.2f} (goal <= {t_goal}: {'met' if t <= t_goal else 'NOT met'})"
        if m_goal is not None:
            verdict += f", memory {m:.2f} (goal <= {m_goal}: {'met' if m <= m_goal else 'NOT met'})"
        lines.append(verdict)
    if "peft_boft" in results:
        lines += ["", f"PEFT BOFT ran with {results['peft_boft'].get('effective_factors')} butterfly factor(s) "
                      f"(asked for {M}): without its CUDA extension PEFT silently falls back to m = 1. "
                      f"govtune BOFT applies all {M}."]
    lines += ["", "boft and hybrid run with the default boft_checkpoint=True (the rotated weight R W0 is rebuilt in "
                  "backward, not stored), unitary with the default unitary_checkpoint=True (U x is recomputed in "
                  "backward, its FFT intermediates not stored); `_nockpt` rows store them.",
              "", "train mem = peak resident memory of a step above the memory before it (activations, gradients, "
                  "temporaries) + optimiser state + adapter weights: what training adds on top of the loaded frozen "
                  "model. See the module docstring for how it is measured.", ""]
    return "\n".join(lines)


def hybrid_pieces_section(results: dict) -> list[str]:
    """What each switched-off piece saves against the full hybrid, in points of PEFT LoRA's step."""
    rows = [n for n in HYBRID_PIECES if n in results]
    if not rows or "hybrid" not in results:
        return []
    ref, hybrid = results[REFERENCE]["step_s_median"], results["hybrid"]["step_s_median"]
    lines = ["", "The hybrid's pieces (timing only: each row switches one piece off; saved = hybrid - row):", "",
             "| row | switched off | step (s) | saved (s) | saved, points of PEFT LoRA's step |",
             "|---|---|---|---|---|"]
    for n in rows:
        t = results[n]["step_s_median"]
        lines.append(f"| {n} | {HYBRID_PIECES[n]} | {t:.3f} | {hybrid - t:+.3f} | {100 * (hybrid - t) / ref:+.1f} |")
    if "hybrid_fixedlam" in results and "hybrid_nolamupdate" in results:
        book = results["hybrid_fixedlam"]["step_s_median"] - results["hybrid_nolamupdate"]["step_s_median"]
        lines += ["", f"lam bookkeeping alone (hybrid_fixedlam - hybrid_nolamupdate): {book:+.3f} s "
                      f"({100 * book / ref:+.1f} points)."]
    if "boft" in results:
        over = hybrid - results["boft"]["step_s_median"]
        lines += ["", f"The hybrid over BOFT: {over:+.3f} s ({100 * over / ref:+.1f} points of PEFT LoRA's step)."]
    return lines


def bf16_section(results: dict) -> list[str]:
    """Each method under bf16 autocast against itself in float32: step time and the loss of the last step."""
    rows = [n for n in BF16 if n in results and n.removesuffix("_bf16") in results]
    if not rows:
        return []
    lines = ["", "bf16 autocast against float32, method by method (same initial weights, same batch, same steps; "
                 "the loss is the last step's):", "",
             "| method | float32 step (s) | bf16 step (s) | bf16 / float32 | float32 loss | bf16 loss |",
             "|---|---|---|---|---|---|"]
    for n in rows:
        f, b = results[n.removesuffix("_bf16")], results[n]
        lines.append(f"| {n.removesuffix('_bf16')} | {f['step_s_median']:.3f} | {b['step_s_median']:.3f} | "
                     f"{b['step_s_median'] / f['step_s_median']:.2f} | {f['final_loss']:.4f} | {b['final_loss']:.4f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated subset of methods (peft_lora always runs)")
    ap.add_argument("--hybrid-pieces", action="store_true",
                    help="run hybrid, boft and every hybrid row with one piece switched off (" +
                         ", ".join(HYBRID_PIECES) + "); writes adapter_step[_demo]_hybrid_pieces.{json,md}")
    ap.add_argument("--bf16", action="store_true",
                    help="run " + ", ".join(BF16) + " beside their float32 rows; writes adapter_step[_demo]_bf16.{json,md}")
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="bench",
                    help="bench: SmolLM2, q/v, loss on all tokens; demo: Gemma 3 270M, q/k/v/o, batch 8, loss on targets")
    args = ap.parse_args(argv)
    global TARGETS
    setting = SETTINGS[args.setting]
    TARGETS = setting["targets"]
    order = [REFERENCE] + [m for m in GOVTUNE + PEFT if m != REFERENCE]
    wanted = set(filter(None, args.only.split(",")))
    if args.hybrid_pieces:
        wanted |= {"hybrid", "boft", *HYBRID_PIECES}
    if args.bf16:
        wanted |= {m.removesuffix("_bf16") for m in BF16} | set(BF16)
    if wanted:
        unknown = wanted - set(order + OPTIONAL)
        if unknown:
            raise SystemExit(f"unknown methods {sorted(unknown)}: choose from {order + OPTIONAL}")
        order = [m for m in order + OPTIONAL if m in wanted or m == REFERENCE]
    torch.manual_seed(0)
    base, _ = load_model(setting["model"])
    for p in base.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, base.config.vocab_size, (setting["batch"], setting["length"]))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    if setting["target_tokens"]:
        k = setting["target_tokens"]
        labels = torch.full_like(ids, -100)
        labels[:, -k:] = ids[:, -k:]
        # logits of the positions that predict a target only (transformers shifts labels inside the loss)
        batch.update(labels=labels[:, -(k + 1):], logits_to_keep=k + 1)
    runs = []
    for name in order:
        print(f"[adapter_step] building {name}", flush=True)
        runs.append(build(name, base, batch))
    rounds = args.warmup + args.steps
    machine = MachineLoad()
    # Round robin: every method sees the same machine load, step by step.
    for i in tqdm(range(rounds), desc="rounds"):
        for run in runs:
            run.step(batch, i / rounds, record=i >= args.warmup)
    load = machine.result()
    results = {run.name: run.result(run.name == "full") for run in runs}
    for name, r in results.items():
        print(f"  {name:14s} step {r['step_s_median']:.3f} s  train mem {r['train_mem_mb']:.0f} MB  "
              f"tunable {r['tunable_params']:,}", flush=True)
    loss_on = f", loss on the last {setting['target_tokens']} tokens" if setting["target_tokens"] else ""
    meta = {"setting": args.setting, "model": setting["model"], "label": setting["label"], "loss_on": loss_on,
            "batch": f"{setting['batch']} x {setting['length']}", "targets": TARGETS, "r": R, "alpha": ALPHA, "boft_factors": M,
            "boft_block_size": B, "steps": args.steps, "warmup": args.warmup, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine_load": load}
    ref = results[REFERENCE]
    for r in results.values():
        r["time_ratio"] = r["step_s_median"] / ref["step_s_median"]
        r["mem_ratio"] = r["train_mem_mb"] / ref["train_mem_mb"]
        r["params_ratio"] = r["tunable_params"] / ref["tunable_params"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "adapter_step" if args.setting == "bench" else f"adapter_step_{args.setting}"
    if args.hybrid_pieces:  # its own files: the main table keeps the full comparison
        stem += "_hybrid_pieces"
    if args.bf16:
        stem += "_bf16"
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps({"meta": meta, "results": results}, indent=2))
    atomic_write_text(RESULTS / f"{stem}.md", report(results, meta))
    print(report(results, meta))


if __name__ == "__main__":
    main()
