"""LoRA and the hybrid over a quantised base against the float32 base, side by side in one process.

The demo study's setting (configs/demo.yaml): Gemma 3 270M, all four attention projections, r = 16, the
demo's training data (32 XNLI examples per language + 16 FLORES pairs per direction, curation C2, seed 0),
its batch size, length, learning rates and one epoch, trained by govtune's own loop. For each method the
float32 run and the quantised run follow each other (method by method, float first), so both see the same
load of a shared machine. Per run:

- `model_mb`: resident memory the loaded model adds (RSS after loading - RSS before, glibc told to return
  freed blocks at once, as in bench/adapter_step.py);
- `peak_mb`: peak RSS during training above the RSS before loading: model + activations, gradients,
  optimiser state and temporaries;
- `step_s`: median optimiser step after 2 warm-up steps (govtune.training's footprint);
- `val_loss_start` / `val_loss_end`: the demo's validation loss before training and after the epoch.

    python bench/quantized_base.py [--quantize int8] [--methods lora,hybrid] [--model gemma3-270m]
                                   [--stage c2] [--shots 32] [--out bench/results]

Writes OUT/quantized_base.json and .md atomically (other --model/--shots: quantized_base_<model>.*).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from govtune.adapters import AdapterConfig, inject  # noqa: E402
from govtune.adapters.registry import GRADIENT_INIT  # noqa: E402
from govtune.atomic import atomic_write_text  # noqa: E402
from govtune.models import load_model  # noqa: E402
from govtune.results.layout import StudyLayout  # noqa: E402
from govtune.study.cell import _calibration_batches  # noqa: E402
from govtune.study.data import StudyData, curate_study  # noqa: E402
from govtune.study.loading import build_config, load_config  # noqa: E402
from govtune.training import train  # noqa: E402

from govtune.machine_load import MachineLoad, describe  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
_libc = ctypes.CDLL("libc.so.6")
_libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: large blocks are mmapped and returned to the OS on free


def _rss_mb() -> float:
    gc.collect()
    _libc.malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status: this benchmark reads Linux process memory")


def one_run(config, data: StudyData, stage: str, shots: int, method: str, quantize: str | None) -> dict:
    before = _rss_mb()
    torch.manual_seed(0)
    model, tok = load_model(config.model, quantize=quantize)
    model_mb = _rss_mb() - before
    pairs, val_pairs, _ = data.training_pairs(stage, shots, 0)
    options = config.adapter_options(method)
    calibration = None
    if options["method"] in GRADIENT_INIT:
        calibration = _calibration_batches(model, tok, pairs, config, torch.device("cpu"))
        options.setdefault("ga_batches", len(calibration))
    torch.manual_seed(0)
    inject(model, AdapterConfig(**options), calibration=calibration, progress=False)
    t0 = time.perf_counter()
    result = train(model, tok, pairs, val_pairs, config.train_config(method, 0, progress=False))
    wall = time.perf_counter() - t0
    fp = result.footprint
    del model, result.history.steps[:]
    row = {"method": method, "base": quantize or "float32", "model_mb": round(model_mb, 1),
           "peak_mb": round(fp.peak_memory_mb - before, 1) if fp.peak_memory_mb else None,
           "step_s": fp.step_time_s, "train_wall_s": round(wall, 1), "steps": fp.timed_steps,
           "val_loss_start": result.history.initial_val_loss, "val_loss_end": result.history.epochs[-1].val_loss,
           "train_loss_end": result.history.epochs[-1].train_loss}
    print(f"[quantized_base] {method:7s} {row['base']:8s} model {row['model_mb']:7.1f} MB  peak {row['peak_mb']} MB  "
          f"step {row['step_s']:.3f} s  val {row['val_loss_start']:.4f} -> {row['val_loss_end']:.4f}", flush=True)
    return row


def report(rows: list[dict], meta: dict) -> str:
    lines = [f"# Adapters over a {meta['quantize']} base vs the float32 base ({meta['label']})", "",
             f"`python bench/quantized_base.py --quantize {meta['quantize']}`: {meta['model']}, {meta['train_pairs']} "
             f"training pairs ({meta['shots']} shots, curation {meta['stage']}), {meta['val_pairs']} validation "
             f"pairs, batch {meta['batch_size']}, max length {meta['max_length']}, {meta['epochs']} epoch, "
             f"targets {meta['targets']}, r = {meta['r']}; torch {meta['torch']}, {meta['threads']} threads. "
             f"Ratios: quantised / float32 of the same method.", "",
             "| method | base | model MB | peak MB (model + training) | step s | val loss before | val loss after "
             "| model ratio | peak ratio | step ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    by = {(r["method"], r["base"]): r for r in rows}
    for r in rows:
        f = by[(r["method"], "float32")]
        ratio = (lambda k: f"{r[k] / f[k]:.2f}" if r[k] and f[k] else "")
        lines.append(f"| {r['method']} | {r['base']} | {r['model_mb']:.0f} | {r['peak_mb']:.0f} | {r['step_s']:.3f} | "
                     f"{r['val_loss_start']:.4f} | {r['val_loss_end']:.4f} | {ratio('model_mb')} | "
                     f"{ratio('peak_mb')} | {ratio('step_s')} |")
    lines += ["", describe(meta["machine_load"]), f"Total wall time {meta['wall_s']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quantize", default="int8", choices=("int8", "int4", "nf4"))
    ap.add_argument("--methods", default="lora,hybrid")
    ap.add_argument("--model", default=None, help="default: the demo's (gemma3-270m); tiny-llama for a dry run")
    ap.add_argument("--stage", default="c2", help="curation stage of the training data (the demo's: c2)")
    ap.add_argument("--shots", type=int, default=32)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*merging adapters into a quantised base.*")
    base = load_config(ROOT / "configs" / "demo.yaml").to_dict()
    config = build_config({**base, **({"model": args.model} if args.model else {})}, {})
    t0 = time.perf_counter()
    machine = MachineLoad()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = StudyData(config, StudyLayout(Path(tmp)), progress=False)
        curate_study(data, [args.stage], lambda: load_model(config.model))
        pairs, val_pairs, _ = data.training_pairs(args.stage, args.shots, 0)
        for method in args.methods.split(","):
            for quantize in (None, args.quantize):
                rows.append(one_run(config, data, args.stage, args.shots, method, quantize))
    options = config.adapter_options("lora")
    meta = {"model": config.model, "label": "the demo's setting" if config.model == "gemma3-270m" else "dry run",
            "quantize": args.quantize, "stage": args.stage, "shots": args.shots, "train_pairs": len(pairs),
            "val_pairs": len(val_pairs), "batch_size": config.batch_size, "max_length": config.max_length,
            "epochs": config.epochs, "targets": options.get("target_modules") or "q/k/v/o_proj",
            "r": options.get("r", 16), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine_load": machine.result(), "wall_s": time.perf_counter() - t0}
    stem = "quantized_base" if (config.model, args.shots) == ("gemma3-270m", 32) else f"quantized_base_{config.model}"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps({"meta": meta, "results": rows}, indent=2))
    atomic_write_text(args.out / f"{stem}.md", report(rows, meta))
    print(report(rows, meta))


if __name__ == "__main__":
    main()
