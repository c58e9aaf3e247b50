"""The report's PNG figures: cost-quality frontier, training dynamics, few-shot scaling, lam trajectories
and reliability diagrams. Each is drawn only when the study has the runs it needs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from govtune.atomic import atomic_write_with  # noqa: E402
from govtune.data.papers import TITLES  # noqa: E402
from govtune.evaluation import bootstrap as bs  # noqa: E402
from govtune.evaluation import metric_registry as registry  # noqa: E402
from govtune.evaluation.plots import reliability_diagram  # noqa: E402
from govtune.report.breadth import focus_method, is_breadth, languages  # noqa: E402
from govtune.report.reading import Study, label  # noqa: E402
from govtune.results.layout import StudyLayout  # noqa: E402
from govtune.results.store import load_scaled_predictions  # noqa: E402



def macro_axis(task: str) -> str:
    """The y axis of the frontier and scaling figures: the focus task's Macro accuracy."""
    macro = registry.metric(task, "macro")
    return f"{TITLES.get(task, task)} {macro.name} {macro.quantity} (%)"


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _yerr(value: float, ci) -> list[list[float]] | None:
    """matplotlib's asymmetric error bar for a 95% interval (None without one); a percentile interval may
    sit beside the point, so each arm is at least 0."""
    return None if ci is None else [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def _save(fig, path: Path) -> None:
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def frontier(s: Study, path: Path) -> bool:
    task, points = s.focus, []
    for m in s.methods:
        runs = s.cell(m)
        macro = _mean([r["metrics"].get(task, {}).get("macro") for r in runs])
        t = _mean([r["footprint"].get("step_time_s") for r in runs])
        mem = _mean([r["footprint"].get("peak_memory_mb") for r in runs])
        if macro is not None and t is not None:
            points.append((label(m), t, mem, macro, _yerr(macro, s.intervals.ci(runs, task, "macro"))))
    if not points:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, idx, xlabel in ((axes[0], 1, "mean step time (s)"), (axes[1], 2, "peak memory (MB)")):
        for p in points:
            if p[idx] is not None:
                ax.errorbar(p[idx], p[3], yerr=p[4], fmt="o", ms=6, capsize=3)
                ax.annotate(p[0], (p[idx], p[3]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(macro_axis(task))
        ax.grid(alpha=0.3)
    fig.suptitle(f"Cost-quality frontier ({s.model}, {s.main_shots}-shot; upper-left is better; bars: 95% "
                 f"bootstrap intervals)")
    _save(fig, path)
    return True


def _mean_curve(runs: list[dict], curve: str) -> tuple[list[float], list[float]]:
    per_x: dict[float, list[float]] = {}
    for r in runs:
        for x, y in r["curves"].get(curve, []):
            per_x.setdefault(x, []).append(y)
    xs = sorted(per_x)
    return xs, [_mean(per_x[x]) for x in xs]


def dynamics(s: Study, path: Path) -> bool:
    """Gradient norm and training loss per step (thin) with their epoch means (markers), and the
    validation loss per epoch: the papers' Figure 4, plus the per-step view short runs need."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    drawn = False
    for i, m in enumerate(s.methods):
        runs = s.cell(m)
        color = f"C{i}"
        steps_per_epoch = max((r["footprint"].get("train_steps") or 0) for r in runs) / max(
            len(_mean_curve(runs, "epoch/train_loss")[0]), 1) if runs else 1
        for ax, step_curve, epoch_curve in ((axes[0], "step/grad_norm", "epoch/grad_norm"),
                                            (axes[1], "step/loss", "epoch/train_loss"),
                                            (axes[2], None, "epoch/val_loss")):
            if step_curve:
                xs, ys = _mean_curve(runs, step_curve)
                if xs:
                    ax.plot(xs, ys, color=color, lw=0.8, alpha=0.6)
                    drawn = True
            xs, ys = _mean_curve(runs, epoch_curve)
            if xs:
                # epoch means sit at the epoch's last step on the step axes
                ex = [x * steps_per_epoch for x in xs] if step_curve else xs
                ax.plot(ex, ys, color=color, marker="o", lw=1.5, label=label(m))
                drawn = True
    if not drawn:
        plt.close(fig)
        return False
    for ax, title, xlabel in ((axes[0], "gradient norm (before clipping)", "optimiser step"),
                              (axes[1], "training loss per target token", "optimiser step"),
                              (axes[2], "validation loss per target token", "epoch")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"Training dynamics ({s.model}, {s.main_shots}-shot; lines per step, markers per epoch; "
                 f"mean over seeds)")
    _save(fig, path)
    return True


def scaling(s: Study, path: Path) -> bool:
    task, shots = s.focus, [k for k in s.shots if k > 0]
    base = _mean([r["metrics"].get(task, {}).get("macro") for r in s.cell("base")])
    if len(shots) + (base is not None) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    base_err = _yerr(base, s.intervals.ci(s.cell("base"), task, "macro")) if base is not None else None
    for m in s.methods:
        xs, ys = ([0], [base]) if base is not None else ([], [])
        errs = [base_err]
        for k in shots:
            runs = s.cell(m, shots=k)
            v = _mean([r["metrics"].get(task, {}).get("macro") for r in runs])
            if v is not None:
                xs.append(k)
                ys.append(v)
                errs.append(_yerr(v, s.intervals.ci(runs, task, "macro")))
        errs = errs[1:] if base is None else errs
        yerr = None if any(e is None for e in errs) else [[e[0][0] for e in errs], [e[1][0] for e in errs]]
        ax.errorbar(xs, ys, yerr=yerr, marker="o", capsize=3, label=label(m))
    ax.set_xscale("symlog", linthresh=8)
    if task == s.main_task:  # XNLI's three classes: where "leaves chance" is read against
        xlim = ax.get_xlim()  # the line spans the axes and must not widen them
        ax.axhline(bs.CHANCE, color="grey", linestyle="--", linewidth=1, label=f"chance ({bs.CHANCE:.1f}%)")
        ax.set_xlim(xlim)
    ax.set_xticks([0, *shots], [str(k) for k in [0, *shots]])
    ax.set_xlabel("examples per language")
    ax.set_ylabel(macro_axis(task))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Few-shot scaling ({s.model}; bars: 95% bootstrap intervals)", fontsize=10)
    _save(fig, path)
    return True


def lam_trajectories(s: Study, path: Path) -> bool:
    hybrid = [(m, s.cell(m)[0]) for m in s.methods if s.cell(m) and any(
        k.startswith("lam/") for k in s.cell(m)[0]["curves"])]
    if not hybrid:
        return False
    fig, axes = plt.subplots(1, len(hybrid), figsize=(6 * len(hybrid), 4), squeeze=False)
    for ax, (m, run) in zip(axes[0], hybrid):
        curves = {k[4:]: v for k, v in run["curves"].items() if k.startswith("lam/")}
        cmap = plt.get_cmap("viridis")
        for i, (name, pts) in enumerate(sorted(curves.items())):
            ax.plot([x for x, _ in pts], [y for _, y in pts], color=cmap(i / max(len(curves) - 1, 1)),
                    lw=0.7, alpha=0.7)
        steps = sorted({x for pts in curves.values() for x, _ in pts})
        avg = [_mean([dict(p).get(x) for p in curves.values()]) for x in steps]
        ax.plot(steps, avg, color="black", lw=2, label="mean over layers")
        ax.set_ylim(0, 1)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("λ (LoRA-GA share)")
        ax.set_title(f"{label(m)}: λ per layer ({len(curves)} layers; colour = depth), seed {run['seed']}",
                     fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    _save(fig, path)
    return True


def reliability(s: Study, fig_dir: Path) -> list[str]:
    """The papers' classification task's reliability diagrams, before and after temperature scaling."""
    task, names = s.main_task, []
    if task is None:
        return names
    for m in s.rows():
        runs = s.cell(m)
        if not runs:
            continue
        preds = load_scaled_predictions(s.out_dir, runs[0]["run_id"], task)
        if not preds:
            continue
        path = fig_dir / f"reliability_{m}.png"
        metrics = runs[0]["metrics"].get(task, {})
        temperatures = {k.split(".")[1]: v for k, v in metrics.items()
                        if k.startswith("languages.") and k.endswith(".temperature")}
        reliability_diagram(preds, path, title=f"{label(m)} ({s.model}, {TITLES[task]}, seed {runs[0]['seed']})",
                            temperatures=temperatures or None)
        names.append(path.name)
    return names


def language_accuracy(s: Study, task: str, path: Path) -> bool:
    """One point and 95% bar per language (the focus method's accuracy), best at the top, coloured by
    resource class (Joshi et al. 2020), hollow where the language was not in the tuning set: its height
    grows with the languages, so 200 labels stay legible."""
    langs, runs = languages(s, task), s.cell(focus_method(s))
    langs = [x for x in langs if x.accuracy is not None]
    if not langs:
        return False
    colours = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(7.5, 1.5 + 0.16 * len(langs)))
    seen = set()
    for y, x in enumerate(reversed(langs)):  # the best language at the top
        ci = s.intervals.ci(runs, task, f"languages.{x.code}.accuracy")
        colour = "#999999" if x.level is None else colours(x.level / 5)
        name = "class ?" if x.level is None else f"class {x.level}"
        ax.errorbar(x.accuracy, y, xerr=None if ci is None else [[max(0.0, x.accuracy - ci[0])],
                                                                 [max(0.0, ci[1] - x.accuracy)]],
                    fmt="o", color=colour, mfc="white" if x.tuned is False else colour, ms=4, capsize=2, lw=1,
                    label=None if name in seen else name)
        seen.add(name)
    macro = _mean(s.values(runs, task, "macro"))
    if macro is not None:
        ax.axvline(macro, color="black", lw=0.8, ls="--", label="Macro")
    ax.set_yticks(range(len(langs)), [f"{x.name} ({x.code})" for x in reversed(langs)], fontsize=7)
    ax.set_ylim(-1, len(langs))
    ax.set_xlim(-2, 102)  # the whole scale: a glance tells a weak language from a strong one
    ax.tick_params(axis="x", top=True, labeltop=True)  # 200 rows are several screens tall: the scale at both ends
    ax.set_xlabel(f"{TITLES.get(task, task)} accuracy (%), {label(focus_method(s))}, 95% interval")
    handles, names = ax.get_legend_handles_labels()
    order = sorted(range(len(names)), key=lambda i: names[i])
    ax.legend([handles[i] for i in order], [names[i] for i in order], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1), title="resource class (hollow: not tuned on)", title_fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return True


def draw_figures(s: Study) -> list[str]:
    """Draw every figure the runs support into OUT/figures/; returns paths relative to OUT."""
    layout = StudyLayout(s.out_dir)
    layout.figures.mkdir(exist_ok=True)
    names = []
    focus = s.focus is not None  # the frontier and scaling figures plot the focus task's Macro accuracy
    for name, draw in (("frontier.png", frontier if focus else None), ("dynamics.png", dynamics),
                       ("scaling.png", scaling if focus else None), ("lam.png", lam_trajectories)):
        if draw is None:
            continue
        if draw(s, layout.figure(name)):
            names.append(name)
    names += reliability(s, layout.figures)
    for task in s.tasks:  # a classification task over many languages: its languages in one figure
        if s.kind(task) == "classification" and is_breadth(s, task):
            if language_accuracy(s, task, layout.figure(f"languages_{task}.png")):
                names.append(f"languages_{task}.png")
    return [layout.figure(n).relative_to(layout.root).as_posix() for n in names]
