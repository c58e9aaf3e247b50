"""The report's 95% intervals and paired differences, from the per-example predictions in results.sqlite.

A single run's interval is the one its cell stored (`ci95`); several seeds of one method get the interval of
their seed mean (each seed's metric on the same resamples, averaged). A difference between two methods is
the paired bootstrap of (seed mean of a) - (seed mean of b) on the same resamples: it measures test-sample
noise only; Welch's p in the main tables measures seed-to-seed noise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from govtune.evaluation import bootstrap as bs
from govtune.experiments.store import load_predictions

if TYPE_CHECKING:
    from govtune.experiments.report import Study

MARK = "*"  # after a difference whose 95% interval excludes 0


class Intervals:
    """Replicates per run and task, computed once from the store and shared by every table."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._runs: dict[tuple[str, str], tuple | None] = {}

    def _run(self, run: dict, task: str) -> tuple | None:
        """(units, point estimates, replicates) of one run, None when the store has no predictions for it."""
        key = (run["run_id"], task)
        if key not in self._runs:
            records = load_predictions(self.out_dir, run["run_id"], task)
            if records:
                to_units, replicate = bs.REPLICATES[task]
                units = to_units(records)
                self._runs[key] = (units, replicate(units, bs.identity(units)), replicate(units))
            else:
                self._runs[key] = None
        return self._runs[key]

    def group(self, runs: list[dict], task: str) -> tuple | None:
        """Seed means of a method's runs (same test rows): (units, point, replicates), or None."""
        data = [self._run(r, task) for r in runs]
        if not data or any(d is None for d in data):
            return None
        try:
            for d in data[1:]:
                bs.check_same_rows(data[0][0], d[0])
        except ValueError:
            return None
        return data[0][0], bs.seed_mean([d[1] for d in data]), bs.seed_mean([d[2] for d in data])

    def ci(self, runs: list[dict], task: str, metric: str) -> tuple[float, float] | None:
        if len(runs) == 1 and metric in runs[0].get("ci95", {}).get(task, {}):
            return tuple(runs[0]["ci95"][task][metric])
        g = self.group(runs, task) if runs else None
        return bs.percentile_interval(g[2][metric]) if g and metric in g[2] else None

    def difference(self, runs_a: list[dict], runs_b: list[dict], task: str) -> dict[str, bs.Difference] | None:
        a, b = self.group(runs_a, task), self.group(runs_b, task)
        if a is None or b is None:
            return None
        try:
            bs.check_same_rows(a[0], b[0])
        except ValueError:
            return None
        return bs.paired_differences(a[1], a[2], b[1], b[2])


def interval_note(s: "Study") -> str:
    """The sentence under a table whose cells carry intervals."""
    if not any(r.get("ci95") for r in s.runs):
        return ""
    return (" [low, high]: 95% percentile bootstrap interval over the test examples (1,000 resamples, "
            "languages resampled separately); with several seeds, the interval of the seed mean. A gap "
            "(Δ, max − min over languages) is widened by resampling noise, so its interval leans above its "
            "point estimate and can exclude it (a gap of 0 most of all): read it as how large the gap could be.")


def fmt_difference(d: bs.Difference | None, digits: int = 1, mark: bool = True) -> str:
    if d is None:
        return "-"
    # rounding first (+ 0.0 turns -0.0 into 0.0) so that no difference prints as "-0.0"
    est, low, high = (round(x, digits) + 0.0 for x in (d.estimate, d.low, d.high))
    text = f"{est:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
    return text + f" {MARK}" if mark and d.significant else text


def _columns(s: "Study", task: str) -> list[tuple[str, str]]:
    from govtune.experiments.report import LANG_LABELS

    if task == "xnli":
        langs = s.config.get("languages") or ["en", "zh", "hi"]
        return ([(f"languages.{lang}.accuracy", LANG_LABELS.get(lang, lang)) for lang in langs]
                + [("macro", "Macro"), ("avg_ece", "Avg-ECE")])
    cols = []
    for pair in s.config.get("flores_pairs") or ["en-zh", "en-es"]:
        name = pair.replace("-", "→").upper()
        cols += [(f"pairs.{pair}.bleu", f"{name} BLEU"), (f"pairs.{pair}.chrf", f"{name} chrF++")]
    return cols + [("average_bleu", "Avg BLEU")]


def comparisons(s: "Study") -> list[tuple[str, str]]:
    """(method, reference): every method against the base model, the in-context baseline and LoRA; a study
    without LoRA (an ablation of one method's variants) compares them with its first method instead."""
    refs = [ref for ref in ("base", "icl", "lora") if s.cell(ref)]
    if "lora" not in refs and len(s.methods) > 1:
        refs.append(s.methods[0])
    return [(m, ref) for ref in refs for m in s.methods if m != ref and s.cell(m)]


def chance_text(s: "Study") -> str:
    """Which XNLI numbers cannot be told from chance: their 95% interval covers 33.3%."""
    from govtune.experiments.report import label

    at_chance = []
    for method in s.rows():
        runs = s.cell(method)
        hits = []
        for key, name in [c for c in _columns(s, "xnli") if c[0] != "avg_ece"]:  # accuracies and Macro
            ci = s.intervals.ci(runs, "xnli", key) if runs else None
            if ci and ci[0] <= bs.CHANCE <= ci[1]:
                hits.append(name)
        if hits:
            at_chance.append(f"{label(method)} ({', '.join(hits)})")
    if not at_chance:
        return ""
    return ("XNLI at chance (95% interval covers 33.3%): " + "; ".join(at_chance)
            + ". These accuracies are not evidence that the model does the task.")


def differences_section(s: "Study") -> str | None:
    """Paired differences per metric, each method against the base model and LoRA, with the significant
    ones named in words, and the XNLI accuracies at chance; None when there is neither (no per-example
    predictions to pair, no interval covering chance)."""
    from govtune.experiments.report import label, table

    parts, any_row = [], False
    significant: dict[str, list[str]] = {}  # comparison -> its significant metrics, in words
    for task, title in (("xnli", "XNLI (accuracy and ECE, points)"), ("flores", "FLORES (BLEU and chrF++)")):
        if not s.has(task):
            continue
        cols = _columns(s, task)
        rows = []
        for method, ref in comparisons(s):
            diff = s.intervals.difference(s.cell(method), s.cell(ref), task)
            if diff is None:
                continue
            name = f"{label(method)} − {label(ref)}"
            rows.append([name, *[fmt_difference(diff.get(key)) for key, _ in cols]])
            significant.setdefault(name, []).extend(
                f"{task.upper()} {col} {fmt_difference(diff[key], mark=False)}"
                for key, col in cols if key in diff and diff[key].significant)
        if rows:
            any_row = True
            parts.append(f"#### {title}\n\n{s.scope(task)}\n\n" + table(["Comparison", *[c for _, c in cols]], rows))
    chance = chance_text(s)
    if not any_row and not chance:
        return None
    if any(significant.values()):
        verdict = ("Significant differences (the paired 95% interval excludes 0); every other difference is "
                   "within test-sample noise:\n\n" + "\n".join(
                       f"- {name}: {', '.join(found) if found else 'none significant'}."
                       for name, found in significant.items()))
    elif any_row:
        verdict = "No difference is significant: every paired 95% interval covers 0."
    else:
        verdict = ""
    seeds = (" With several seeds each side is its seed mean on the same resamples, so these intervals cover "
             "test-sample noise only; Welch's p in the tables above covers seed-to-seed noise."
             if len(s.seeds) > 1 else "")
    intro = ("Paired bootstrap of the difference (method − reference) on the same test rows: both runs are "
             "scored on the same 1,000 resamples (languages and directions resampled separately); "
             f"{MARK} marks a difference whose 95% interval excludes 0. ECE: lower is better, so a negative "
             f"difference is an improvement." + seeds)
    text = "\n\n".join(x for x in (intro if any_row else "", verdict, chance) if x)
    return ("### Differences and significance\n\n" + text
            + ("\n\n" + "\n\n".join(parts) if parts else ""))
