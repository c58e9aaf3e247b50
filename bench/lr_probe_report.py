"""The learning-rate probe's table (lr_probe.md) and plot (lr_probe.png), from its JSON alone.

Each (part, series, rate) cell holds one validation loss per seed; the table gives their mean and a 95%
t-interval over seeds (n - 1 degrees of freedom: with 3 seeds it is wide, as it should be), the plot the
same as a band around the mean."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy import stats  # noqa: E402

from govtune.machine_load import describe  # noqa: E402

from govtune.atomic import atomic_write_text, atomic_write_with  # noqa: E402

TITLES = {"grid": "Each method over one rate (the hybrid: both branches at it)",
          "hybrid2d": "Hybrid: LoRA-GA branch rate (x) per BOFT branch rate (lines)",
          "lora_ga_init": "LoRA-GA: gamma and gradient-estimate size"}
X_LABEL = {"grid": "learning rate", "hybrid2d": "LoRA-GA branch rate", "lora_ga_init": "learning rate"}
# A rate whose mean training loss over the epoch is this much above the series' lowest went unstable on the
# way (the loss spiked and came back), even when its final validation loss is low: not a rate to pick.
STABLE_TRAIN = 1.15


def series_of(point: dict) -> tuple[str, float]:
    """(the line a point belongs to, its x): the method; the BOFT branch's rate; gamma and estimate size."""
    if point["part"] == "hybrid2d":
        return f"BOFT branch {point['lr']:g}", point["lr_lora_ga"]
    if point["part"] == "lora_ga_init":
        return f"gamma {point['ga_gamma']:g}, {point['ga_examples']} examples", point["lr"]
    return point["method"], point["lr"]


def interval(values: list[float]) -> tuple[float, float] | None:
    """95% t-interval of the mean; None for a single seed."""
    if len(values) < 2:
        return None
    mean, half = statistics.fmean(values), stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values)
    return mean - half / math.sqrt(len(values)), mean + half / math.sqrt(len(values))


def summarize(points: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """part -> series -> cells sorted by x: {x, seeds, mean, ci, train, step_s, before}."""
    cells: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for p in points:
        series, x = series_of(p)
        cells[p["part"]][series][x].append(p)
    out: dict = {}
    for part, by_series in cells.items():
        out[part] = {}
        for series, by_x in sorted(by_series.items()):
            out[part][series] = [{
                "x": x, "seeds": sorted(p["seed"] for p in ps), "mean": statistics.fmean(p["val_after"] for p in ps),
                "ci": interval([p["val_after"] for p in ps]), "before": statistics.fmean(p["val_before"] for p in ps),
                "train": statistics.fmean(p["train_loss_mean"] for p in ps),
                "step_s": statistics.fmean(p["step_s"] for p in ps)} for x, ps in sorted(by_x.items())]
    return out


def choose(cells: list[dict]) -> dict | None:
    """The rate to pick in one series: among the rates measured on the most seeds, and stable (mean training
    loss within STABLE_TRAIN of the series' lowest), the one with the lowest mean validation loss."""
    if not cells:
        return None
    most = max(len(c["seeds"]) for c in cells)
    floor = min(c["train"] for c in cells)
    fit = [c for c in cells if len(c["seeds"]) == most and c["train"] <= STABLE_TRAIN * floor]
    return min(fit, key=lambda c: c["mean"]) if fit else None


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def markdown(data: dict) -> str:
    s = data["meta"]["settings"]
    summary = summarize(data["points"])
    val = data["points"][0]["val_examples"] if data["points"] else 0
    overrides = f", {' '.join(s['overrides'])}" if s["overrides"] else ""
    lines = [f"# Learning-rate probe: validation loss after {s['epochs']} epoch(s), over seeds", "",
             f"{s['model']}, {s['shots']} examples per language ({s['config']}{overrides}), curation {s['stage']}, "
             f"{val} validation examples drawn from the curated pool minus the shots (never test rows). Mean over "
             f"seeds with a 95% t-interval; `python bench/lr_probe.py --report` rewrites this file from "
             f"lr_probe.json.", ""]
    for invocation in data["meta"]["invocations"]:
        if "machine_load" in invocation:
            lines.append(f"- {invocation['started']} to {invocation.get('finished', '?')}, {invocation['points']} points: "
                         f"{describe(invocation['machine_load'])}")
    for part in ("grid", "hybrid2d", "lora_ga_init"):
        if part not in summary:
            continue
        lines += ["", f"## {TITLES[part]}", "", f"| series | {X_LABEL[part]} | seeds | val loss after | "
                  f"95% interval | val loss before | mean train loss | step (s) |", "|---|---|---|---|---|---|---|---|"]
        for series, cells in summary[part].items():
            for c in cells:
                ci = f"[{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]" if c["ci"] else "-"
                lines.append(f"| {series} | {c['x']:g} | {len(c['seeds'])} | {c['mean']:.3f} | {ci} | "
                             f"{c['before']:.3f} | {c['train']:.3f} | {c['step_s']:.2f} |")
        lines += ["", "Lowest mean validation loss per series: " + "; ".join(
            f"{series} at {min(cells, key=lambda c: c['mean'])['x']:g} "
            f"({min(c['mean'] for c in cells):.3f})" for series, cells in summary[part].items()) + "."]
        chosen = [(series, choose(cells)) for series, cells in summary[part].items()]
        lines += ["", f"Chosen (among the rates measured on the most seeds, the lowest mean validation loss whose mean "
                  f"training loss is within {STABLE_TRAIN:g}x the series' lowest: a rate that spiked on the way is "
                  f"left out): " + "; ".join(
                      f"{series} {c['x']:g} ({c['mean']:.3f}, {_seeds(len(c['seeds']))})" if c else f"{series} none"
                      for series, c in chosen) + "."]
    return "\n".join(lines) + "\n"


def plot(data: dict, path: Path) -> None:
    summary = summarize(data["points"])
    parts = [p for p in ("grid", "hybrid2d", "lora_ga_init") if p in summary]
    if not parts:
        return
    fig, axes = plt.subplots(1, len(parts), figsize=(5.5 * len(parts), 4.2), squeeze=False)
    for ax, part in zip(axes[0], parts):
        for series, cells in summary[part].items():
            xs = [c["x"] for c in cells]
            line, = ax.plot(xs, [c["mean"] for c in cells], marker="o", label=series)
            band = [(c["x"], *c["ci"]) for c in cells if c["ci"]]
            if band:
                ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_xlabel(X_LABEL[part])
        ax.set_ylabel("validation loss after training")
        ax.set_title(TITLES[part], fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def write_report(data: dict, out: Path) -> None:
    atomic_write_text(out / "lr_probe.md", markdown(data))
    plot(data, out / "lr_probe.png")
