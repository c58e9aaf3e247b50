"""Validation loss after training, per method and learning rate, over seeds: how the configs' rates are chosen.

Trains each point on a study's k-shot sample (the demo's by default: Gemma 3 270M, 32 XNLI examples per
language plus its FLORES pairs, one epoch, the study's schedule and settings) and records the validation
loss before and after, on validation rows drawn from the curated pool minus the shots: never the test
rows, so a rate chosen here does not leak into a study's results. The parts (--part, default all three):

    grid          lora, boft, lora_ga and hybrid each at 1e-5 .. 2e-3 (8 rates, log spaced; the hybrid's two
                  branches at the one rate)
    hybrid2d      the hybrid with its LoRA-GA and BOFT branches at rates of their own (lr_branches), 3 x 3
    lora_ga_init  LoRA-GA with gamma 16 or 64 and a gradient estimate over 32 or 128 examples, at 4 rates

every point for each of --seeds (0, 1, 2: the seed draws the shots and initialises the adapter).
--near-best K narrows the plan to the K rates of each series (a grid method, the hybrid's branch-rate grid,
one LoRA-GA gamma and estimate size) with the lowest mean validation loss over the points measured so far:
the later seeds then settle the choice among the best rates instead of re-measuring the grid's far ends.

Resumable and runnable in chunks: each finished point is appended to --out-dir/lr_probe.json at once
(atomically) and a rerun skips the points it holds, so stop it at any time, or run a part, a method or a
number of points per invocation (--part, --methods, --seeds, --limit). --plan prints what is left and how long
it should take (from the points measured so far); --report rewrites the table (lr_probe.md) and the plot
(lr_probe.png) from the JSON without training. Every run rewrites both at its end.

    python bench/lr_probe.py --plan
    python bench/lr_probe.py --part grid --methods lora,boft       # one chunk
    python bench/lr_probe.py --limit 10                            # the next ten points, whatever they are
    python bench/lr_probe.py --set schedule=cosine warmup_ratio=0.03 --out-dir runs/lr_probe_recipe
    python bench/lr_probe.py --config configs/cpu_method_study.yaml --val-per-language 32 --part grid \
        --methods lora --rates 5e-4,1e-3 --seeds 0 --out-dir bench/results/lr_probe_k1024   # a study's budget

Run it alone on the machine (two CPU-heavy jobs on 2 cores slow each other several-fold). It curates the
pool into --work once. A JSON written under other settings (config, overrides, validation size) is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lr_probe_report import write_report  # noqa: E402
from govtune.machine_load import MachineLoad  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GRID = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3)
GRID_METHODS = ("lora", "boft", "lora_ga", "hybrid")
HYBRID_LORA_GA = (2e-5, 5e-5, 1e-4)  # around LoRA-GA's best single rates in the one-seed probe
HYBRID_BOFT = (2e-4, 5e-4, 1e-3)  # around BOFT's
GA_GAMMAS = (16.0, 64.0)  # the official default; the authors' reproduce command
GA_EXAMPLES = (32, 128)  # the gradient estimate's size; 128 = the official LoRA-GA example's
GA_RATES = (1e-5, 2e-5, 5e-5, 1e-4)
PARTS = ("grid", "hybrid2d", "lora_ga_init")


@dataclass(frozen=True)
class Point:
    """One training run of the probe. `lr` is the method's rate (for a hybrid with branch rates: BOFT's)."""

    part: str
    method: str
    lr: float
    seed: int
    lr_lora_ga: float | None = None  # hybrid2d: the LoRA-GA branch's rate
    ga_gamma: float | None = None  # lora_ga_init: AdapterConfig.ga_gamma
    ga_examples: int | None = None  # lora_ga_init: examples in the gradient estimate (None = the study's)

    @property
    def key(self) -> str:
        return "|".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))

    @property
    def lr_branches(self) -> dict[str, float] | None:
        return {"lora_ga": self.lr_lora_ga, "boft": self.lr} if self.lr_lora_ga is not None else None


def plan(parts, methods, seeds, rates=GRID, hybrid_rates=None) -> list[Point]:
    """Every point of the chosen parts, seed by seed (seed 0 of everything first: an early, even picture).
    `rates` narrows the grid part's rates, `hybrid_rates` ((LoRA-GA rate, BOFT rate) pairs) the hybrid2d
    part's: a probe at a larger budget measures a few rates around a known scale, not the whole grid."""
    pairs = hybrid_rates if hybrid_rates is not None else [(g, b) for g in HYBRID_LORA_GA for b in HYBRID_BOFT]
    points = []
    for seed in seeds:
        if "grid" in parts:
            points += [Point("grid", m, lr, seed) for m in methods for lr in rates]
        if "hybrid2d" in parts:
            points += [Point("hybrid2d", "hybrid", b, seed, lr_lora_ga=g) for g, b in pairs]
        if "lora_ga_init" in parts:
            points += [Point("lora_ga_init", "lora_ga", lr, seed, ga_gamma=g, ga_examples=n)
                       for g in GA_GAMMAS for n in GA_EXAMPLES for lr in GA_RATES]
    return points


def _series(p: dict) -> tuple:
    """The series a point belongs to, and the rates that place it within that series."""
    if p["part"] == "hybrid2d":
        return (p["part"],), (p["lr"], p["lr_lora_ga"])
    return (p["part"], p["method"], p["ga_gamma"], p["ga_examples"]), (p["lr"],)


def near_best(points: list[Point], done: list[dict], k: int) -> list[Point]:
    """The points whose rates are among the k with the lowest mean validation loss of their series in `done`
    (the finished points); a series with no finished point keeps every point."""
    losses: dict[tuple, dict[tuple, list[float]]] = {}
    for d in done:
        series, rates = _series(d)
        losses.setdefault(series, {}).setdefault(rates, []).append(d["val_after"])
    best = {series: sorted(by_rate, key=lambda r: sum(by_rate[r]) / len(by_rate[r]))[:k]
            for series, by_rate in losses.items()}
    kept = []
    for point in points:
        series, rates = _series(dataclasses.asdict(point))
        if series not in best or rates in best[series]:
            kept.append(point)
    return kept


def probe(point: Point, config, data, stage: str, shots: int) -> dict:
    """Train one point; its validation loss before and after, and what it cost."""
    import govtune.adapters as adapters
    from govtune.study.cell import _calibration_batches
    from govtune.study.cell import model_loader as _model_loader
    from govtune.training import train
    from govtune.training.loop import make_accelerator

    t0 = time.perf_counter()
    pairs, val_pairs, _ = data.training_pairs(stage, shots, point.seed)
    torch.manual_seed(point.seed)
    model, tok = _model_loader(config)()
    acc = make_accelerator("no", 1)
    options = config.adapter_options(point.method)
    calibration = None
    if options["method"] in ("lora_ga", "hybrid"):
        study = config if point.ga_examples is None else dataclasses.replace(
            config, calibration_batches=math.ceil(point.ga_examples / config.batch_size))
        calibration = _calibration_batches(model, tok, pairs, study, acc.device)
        options.setdefault("ga_batches", len(calibration))
    if point.ga_gamma is not None:
        options["ga_gamma"] = point.ga_gamma
    torch.manual_seed(point.seed)
    adapters.inject(model, adapters.AdapterConfig(**options), calibration=calibration, progress=False)
    tc = dataclasses.replace(config.train_config(point.method, point.seed, progress=False), lr=point.lr,
                             lr_branches=point.lr_branches, checkpoints=False, resume=False)
    result = train(model, tok, pairs, val_pairs, tc, accelerator=acc)
    h = result.history
    return {**dataclasses.asdict(point), "key": point.key, "val_before": h.initial_val_loss,
            "val_after": h.epochs[-1].val_loss, "train_loss_mean": sum(e.train_loss for e in h.epochs) / len(h.epochs),
            "calibration_examples": sum(len(b["input_ids"]) for b in calibration) if calibration else 0,
            "steps": result.steps, "step_s": result.footprint.step_time_s, "val_examples": len(val_pairs),
            "point_s": round(time.perf_counter() - t0, 1)}


def settings(config, args) -> dict:
    """What every point of one JSON must share; a JSON with other settings is refused, not extended."""
    return {"config": args.config, "overrides": args.set, "settings_hash": config.settings_hash(),
            "model": config.model, "shots": max(config.shots), "stage": config.curation[-1], "epochs": config.epochs,
            "val_per_language": args.val_per_language}


def load_results(path: Path, expected: dict) -> dict:
    if not path.exists():
        return {"meta": {"settings": expected, "invocations": []}, "points": []}
    data = json.loads(path.read_text())
    if "points" not in data:
        raise SystemExit(f"{path} is not a resumable probe file (no 'points'); move it away or pass another "
                         f"--out-dir")
    if data["meta"]["settings"] != expected:
        differ = sorted(k for k in expected if data["meta"]["settings"].get(k) != expected[k])
        raise SystemExit(f"{path} was written with other settings ({', '.join(differ)}); its points cannot be "
                         f"mixed with these. Pass another --out-dir, or the same --config / --set / "
                         f"--val-per-language")
    return data


def estimate(pending: list[Point], done: list[dict]) -> str:
    """Pending points and time, from the mean measured cost of the finished points of the same part."""
    if not pending:
        return "nothing left to run"
    lines, total = [], 0.0
    for part in PARTS:
        todo = [p for p in pending if p.part == part]
        if not todo:
            continue
        seen = [d["point_s"] for d in done if d["part"] == part] or [d["point_s"] for d in done]
        each = sum(seen) / len(seen) if seen else None
        total += (each or 0) * len(todo)
        lines.append(f"  {part}: {len(todo)} points" + (f", ~{each:.0f} s each (mean of {len(seen)} measured) = "
                                                        f"{each * len(todo) / 60:.0f} min" if each else
                                                        ", no point measured yet"))
    return "\n".join([f"{len(pending)} points left:", *lines, f"  total ~{total / 3600:.1f} h (alone on the machine)"])


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="study config overrides")
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    ap.add_argument("--methods", default=",".join(GRID_METHODS), help="the grid part's methods")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rates", default=None, help="the grid part's rates, comma-separated (default: the 8-rate grid)")
    ap.add_argument("--hybrid-rates", default=None, metavar="GA:BOFT,...",
                    help="the hybrid2d part's (LoRA-GA rate, BOFT rate) pairs (default: the 3 x 3 grid)")
    ap.add_argument("--near-best", type=int, default=None, metavar="K",
                    help="only the K best rates of each series so far (by mean validation loss)")
    ap.add_argument("--limit", type=int, default=None, help="run at most this many new points, then stop")
    ap.add_argument("--plan", action="store_true", help="print the points left and their expected time; no run")
    ap.add_argument("--report", action="store_true", help="rewrite lr_probe.md and .png from the JSON; no run")
    ap.add_argument("--val-per-language", type=int, default=24)
    ap.add_argument("--work", default="runs/lr_probe", help="where the curated pool is cached")
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    args.parts = [p for p in args.part.split(",") if p]
    args.methods_list = [m for m in args.methods.split(",") if m]
    bad = sorted(set(args.parts) - set(PARTS)) + sorted(set(args.methods_list) - set(GRID_METHODS))
    if bad:
        ap.error(f"unknown part or method {bad}: parts are {', '.join(PARTS)}, methods {', '.join(GRID_METHODS)}")
    args.seed_list = [int(s) for s in args.seeds.split(",") if s]
    try:
        args.rate_list = tuple(float(r) for r in args.rates.split(",") if r) if args.rates else GRID
        args.hybrid_pairs = ([tuple(float(r) for r in pair.split(":")) for pair in args.hybrid_rates.split(",") if pair]
                             if args.hybrid_rates else None)
    except ValueError:
        ap.error(f"--rates takes numbers separated by commas (5e-4,1e-3), --hybrid-rates LoRA-GA:BOFT pairs "
                 f"(5e-5:1e-3,1e-4:1e-3); got {args.rates!r} / {args.hybrid_rates!r}")
    if args.hybrid_pairs and any(len(p) != 2 for p in args.hybrid_pairs):
        ap.error(f"--hybrid-rates takes LoRA-GA:BOFT pairs (5e-5:1e-3,1e-4:1e-3), got {args.hybrid_rates!r}")
    if any(r <= 0 for r in (*args.rate_list, *(r for p in args.hybrid_pairs or () for r in p))):
        ap.error("learning rates must be positive")
    return args


def main(argv=None) -> None:
    from govtune.atomic import atomic_write_json
    from govtune.study.loading import load_config

    args = parse_args(argv)
    config = load_config(args.config, [f"val_per_language={args.val_per_language}", *args.set])
    out = Path(args.out_dir)
    path = out / "lr_probe.json"
    data = load_results(path, settings(config, args))
    if args.report:
        write_report(data, out)
        return
    done = {d["key"] for d in data["points"]}
    pending = [p for p in plan(args.parts, args.methods_list, args.seed_list, args.rate_list, args.hybrid_pairs)
               if p.key not in done]
    if args.near_best is not None:
        pending = near_best(pending, data["points"], args.near_best)
    print(estimate(pending, data["points"]), flush=True)
    if args.plan or not pending:
        return
    from govtune.study.data import StudyData, curate_study
    from govtune.study.cell import model_loader as _model_loader
    from govtune.results.layout import StudyLayout

    stage, shots = config.curation[-1], max(config.shots)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    study_data = StudyData(config, StudyLayout(Path(args.work)), progress=True)
    curate_study(study_data, [stage], _model_loader(config))
    invocation = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "points": 0,
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    data["meta"]["invocations"].append(invocation)
    start = MachineLoad().result()
    bar = tqdm(pending[: args.limit], desc="lr probe", unit="point")
    for point in bar:
        bar.set_postfix_str(f"{point.part} {point.method} {point.lr:g} seed {point.seed}")
        data["points"].append(probe(point, config, study_data, stage, shots))
        # the invocation's load: at its start and after its latest point
        end = MachineLoad().result()["load_average_start"]
        invocation.update(points=invocation["points"] + 1, machine_load={**start, "load_average_end": end},
                       finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        atomic_write_json(path, data)  # a killed run keeps every finished point
    bar.close()
    write_report(data, out)
    print(f"wrote {path} and {out / 'lr_probe.md'}, {out / 'lr_probe.png'}")


if __name__ == "__main__":
    main()
