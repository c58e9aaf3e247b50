"""Validation loss after training, per (method, learning rate): how the demo's per-method rates were chosen.

Trains each `method@lr` on a study's k-shot sample (the demo's by default: Gemma 3 270M, 32 XNLI examples
per language plus its FLORES pairs, one epoch) and reports the validation loss before and after, on
validation rows drawn from the curated pool minus the shots: never the test rows, so a rate chosen here
does not leak into the study's results. One seed: a probe for the order of magnitude, not a result.

    python bench/lr_probe.py lora@5e-4 lora_ga@1e-4 lora_ga@5e-4 hybrid@2e-4 hybrid@5e-4 \
        --config configs/demo.yaml --val-per-language 24

Run it alone on the machine (two CPU-heavy jobs on 2 cores slow each other several-fold). It curates the
pool into --work (once) and writes bench/results/lr_probe.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_load import MachineLoad, describe  # noqa: E402

import govtune.adapters as adapters  # noqa: E402
from govtune.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from govtune.experiments.cell import _calibration_batches  # noqa: E402
from govtune.experiments.config import load_config  # noqa: E402
from govtune.experiments.data import StudyData, curate_study  # noqa: E402
from govtune.experiments.grid import _model_loader  # noqa: E402
from govtune.experiments.layout import StudyLayout  # noqa: E402
from govtune.training import TrainConfig, train  # noqa: E402
from govtune.training.loop import make_accelerator  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def probe(config, data: StudyData, stage: str, shots: int, method: str, lr: float, seed: int) -> dict:
    pairs, val_pairs, _ = data.training_pairs(stage, shots, seed)
    loader = _model_loader(config)
    torch.manual_seed(seed)
    model, tok = loader()
    acc = make_accelerator("no", 1)
    options = config.adapter_options(method)
    calibration = None
    if options["method"] in ("lora_ga", "hybrid"):
        calibration = _calibration_batches(model, tok, pairs, config, acc.device)
        options.setdefault("ga_batches", len(calibration))
    torch.manual_seed(seed)
    adapters.inject(model, adapters.AdapterConfig(**options), calibration=calibration)
    t0 = time.perf_counter()
    result = train(model, tok, pairs, val_pairs,
                   TrainConfig(epochs=config.epochs, lr=lr, batch_size=config.batch_size,
                               max_length=config.max_length, seed=seed, warmup_ratio=config.warmup_ratio,
                               schedule=config.schedule, max_grad_norm=config.max_grad_norm, progress=False,
                               checkpoints=False), accelerator=acc)
    h = result.history
    return {"method": method, "lr": lr, "val_before": h.initial_val_loss, "val_after": h.epochs[-1].val_loss,
            "train_loss_mean": sum(e.train_loss for e in h.epochs) / len(h.epochs),
            "steps": result.steps, "step_s": result.footprint.step_time_s,
            "wall_s": round(time.perf_counter() - t0, 1), "val_examples": len(val_pairs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", help="method@lr, e.g. lora@5e-4 hybrid@2e-4")
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--val-per-language", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/lr_probe", help="where the curated pool is cached")
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args()
    config = load_config(args.config, [f"val_per_language={args.val_per_language}"])
    stage, shots = config.curation[-1], max(config.shots)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = StudyData(config, StudyLayout(work), progress=True)
    curate_study(data, [stage], _model_loader(config))
    rows = []
    load = MachineLoad()
    for spec in args.specs:
        method, _, lr = spec.partition("@")
        if not lr:
            raise SystemExit(f"{spec!r} is not method@lr (e.g. hybrid@2e-4)")
        rows.append(probe(config, data, stage, shots, method, float(lr), args.seed))
        print(rows[-1], flush=True)
    meta = {"config": args.config, "model": config.model, "shots": shots, "stage": stage, "epochs": config.epochs,
            "seed": args.seed, "val_per_language": args.val_per_language, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine_load": load.result()}
    out = Path(args.out_dir)
    atomic_write_json(out / "lr_probe.json", {"meta": meta, "rows": rows})
    lines = [f"# Learning-rate probe: validation loss after {config.epochs} epoch(s)", "",
             f"{config.model}, {shots} examples per language ({args.config}), curation {stage}, seed {args.seed}, "
             f"{rows[0]['val_examples']} validation examples from the curated pool minus the shots (never test "
             f"rows). One seed: an order of magnitude, not a result.", "", describe(meta["machine_load"]), "",
             "| method | lr | val loss before | val loss after | mean train loss | step (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['lr']:g} | {r['val_before']:.3f} | {r['val_after']:.3f} | "
              f"{r['train_loss_mean']:.3f} | {r['step_s']:.2f} |" for r in rows]
    atomic_write_text(out / "lr_probe.md", "\n".join(lines) + "\n")
    print(f"wrote {out / 'lr_probe.md'}")


if __name__ == "__main__":
    main()
