"""What the report reads, from `OUT/results.sqlite` alone: the finished runs grouped for the tables (`Study`),
their 95% intervals and paired differences from the stored predictions (`Intervals`), and the cell
formatting every section shares (method labels, mean ± sd, Welch's p, markdown tables).

Every section of the report (report.py, significance.py, ledger.py, figures.py) reads a `Study`.

A run's interval is recomputed from its stored predictions by the metric's registry method (the cell's stored
`ci95` where there are none); several seeds of one method get the interval of their seed mean (each seed's
metric on the same resamples, averaged; a gap: the mean of each seed's bounds). A difference between two methods is
the paired bootstrap of (seed mean of a) - (seed mean of b) on the same resamples: it measures test-sample
noise only; Welch's p in the main tables measures seed-to-seed noise."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path

from govtune.constants import BASELINES
from govtune.data import papers
from govtune.evaluation import bootstrap as bs
from govtune.evaluation import metric_registry as registry
from govtune.evaluation.stats import mean_sd, welch_p
from govtune.results.store import load_curation, load_predictions, load_runs, load_study

PAPER_METHOD_ORDER = ["base", "icl", "full", "lora", "boft", "lora_ga", "unitary", "unitary_full", "hybrid"]
METHOD_LABELS = {"base": "Base (no tuning)", "icl": "Base + in-context", "full": "Full FT", "lora": "LoRA",
                 "boft": "BOFT", "lora_ga": "LoRA-GA", "unitary": "uRNN (unitary)", "unitary_full": "uRNN (dense)",
                 "hybrid": "Hybrid"}


def label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def fmt(values: list[float], digits: int = 1, ci: tuple[float, float] | None = None) -> str:
    """mean ± sd over seeds; a single seed has no sd, so none is shown. ci: its 95% interval, after it."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    interval = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}{interval}"
    mean_, sd = mean_sd(values)
    return f"{mean_:.{digits}f} ± {sd:.{digits}f}{interval}"


def mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def welch(a: list[float], b: list[float]) -> str:
    if len(a) < 2 or len(b) < 2:
        return "n/a"
    with warnings.catch_warnings():  # scipy warns on (near-)identical samples; the p-value says enough
        warnings.simplefilter("ignore", RuntimeWarning)
        p = welch_p(a, b)
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


class Intervals:
    """Replicates per run and task, computed once from the store's predictions and shared by every table."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self._runs: dict[tuple[str, str], tuple | None] = {}

    def _run(self, run: dict, task: str) -> tuple | None:
        """(units, point estimates, replicates) of one run, None when the store has no predictions for it."""
        key = (run["run_id"], task)
        if key not in self._runs:
            records = load_predictions(self.out_dir, run["run_id"], task)
            if records:
                to_units, replicate = bs.replicator(task, records)
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
        """The metric's interval by its registry method, recomputed from the stored predictions (so a study
        recorded by an older govtune gets today's method); a run's stored ci95 where there are none."""
        if not runs:
            return None
        if registry.metric(task, metric).method == registry.PAIRWISE:
            # a gap's mean over seeds: the mean of each seed's bounds, which contain that seed's gap
            data = [self._run(r, task) for r in runs]
            if all(d is not None and metric in d[2] for d in data):
                bounds = [bs.metric_interval(task, metric, d[1], d[2]) for d in data]
                return tuple(sum(b[i] for b in bounds) / len(bounds) for i in (0, 1))
        else:
            g = self.group(runs, task)
            if g and metric in g[2]:
                return bs.metric_interval(task, metric, g[1], g[2])
        if len(runs) == 1 and metric in runs[0].get("ci95", {}).get(task, {}):
            return tuple(runs[0]["ci95"][task][metric])
        return None

    def difference(self, runs_a: list[dict], runs_b: list[dict], task: str) -> dict[str, bs.Difference] | None:
        a, b = self.group(runs_a, task), self.group(runs_b, task)
        if a is None or b is None:
            return None
        try:
            bs.check_same_rows(a[0], b[0])
        except ValueError:
            return None
        return bs.paired_differences(a[1], a[2], b[1], b[2], task=task)


class Study:
    """The finished runs of one output directory, grouped for the tables, with the study's config and what
    curation did: all from `OUT/results.sqlite`."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.runs = load_runs(out_dir)
        if not self.runs:
            raise FileNotFoundError(f"{out_dir} has no finished runs yet; run `govtune run CONFIG --out {out_dir}`")
        self.info = load_study(out_dir)
        self.config = self.info.get("config", {})
        self.curation = load_curation(out_dir)
        self.groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in self.runs:
            self.groups[(r["method"], r["shots"], r["curation"])].append(r)
        trained = [r for r in self.runs if r["shots"] > 0]
        self.shots = sorted({r["shots"] for r in self.runs})
        self.stages = sorted({r["curation"] for r in trained})
        self.main_shots = 32 if any(r["shots"] == 32 for r in trained) else max((r["shots"] for r in trained),
                                                                                 default=0)
        # the most curated plain stage (c2 > c1 > c0); a study of variants only: its last one
        plain = [st for st in ("c2", "c1", "c0") if st in self.stages]
        self.main_stage = plain[0] if plain else (self.stages[-1] if self.stages else "none")
        found = {r["method"] for r in trained}
        self.methods = [m for m in PAPER_METHOD_ORDER if m in found] + sorted(found - set(PAPER_METHOD_ORDER))
        self.seeds = sorted({r["seed"] for r in trained})
        self.model = self.info.get("model") or self.runs[0].get("model")
        self.intervals = Intervals(out_dir)

    def task_setting(self, task: str, key: str):
        """A setting the task read: its `task_options` entry, else the study's flat key (None: not recorded)."""
        return (self.config.get("task_options") or {}).get(task, {}).get(key, self.config.get(key))

    @property
    def languages(self) -> list[str]:
        return self.task_setting("xnli", "languages") or ["en", "zh", "hi"]

    @property
    def pairs(self) -> list[str]:
        return self.task_setting("flores", "flores_pairs") or ["en-zh", "en-es"]

    def cell(self, method: str, shots: int | None = None, stage: str | None = None) -> list[dict]:
        if method in BASELINES:  # untuned: one run, whatever the shots and stage asked for
            return [r for r in self.runs if r["method"] == method]
        return self.groups.get((method, shots or self.main_shots, stage or self.main_stage), [])

    def rows(self) -> list[str]:
        """The table rows: the untuned baselines that ran, then the tuned methods."""
        return [b for b in BASELINES if self.cell(b)] + self.methods

    def values(self, runs: list[dict], task: str, metric: str) -> list[float]:
        return [r["metrics"].get(task, {}).get(metric) for r in runs if metric in r["metrics"].get(task, {})]

    def show(self, runs: list[dict], task: str, metric: str, interval: bool = True) -> str:
        """A cell: mean (± sd over seeds) in the metric's digits, then its 95% bootstrap interval when asked
        for and the store has one."""
        ci = self.intervals.ci(runs, task, metric) if interval else None
        return fmt(self.values(runs, task, metric), registry.metric(task, metric).digits, ci)

    @property
    def tasks(self) -> list[str]:
        """The evaluated tasks, in the order the runs list them."""
        return list(dict.fromkeys(t for r in self.runs for t in r["metrics"] if t != "footprint"))

    def kind(self, task: str) -> str:
        """A task file's task: classification (class probabilities) or completion (generated text)."""
        metrics = next(r["metrics"][task] for r in self.runs if task in r["metrics"])
        return "classification" if "macro" in metrics else "completion"

    def task_languages(self, task: str) -> list[str]:
        """The languages a task's runs report, in their order."""
        metrics = next(r["metrics"][task] for r in self.runs if task in r["metrics"])
        return list(dict.fromkeys(k.split(".")[1] for k in metrics if k.startswith("languages.")
                                  and k.endswith(".n")))

    def has(self, task: str) -> bool:
        return any(task in r["metrics"] for r in self.runs)

    def kept(self, curation: str) -> dict[str, int]:
        """Records per language that curation `curation` kept (its last stage's counts), {} if not recorded."""
        stage = next((c["stage"] for c in self.curation["curations"] if c["curation"] == curation), None)
        return {r["language"]: r["n"] for r in self.curation["curation_counts"]
                if (r["curation"], r["stage"], r["kind"]) == (curation, stage, "kept")}

    @property
    def main_task(self) -> str | None:
        """The task of the papers' classification tables (govtune.data.papers), if the study has it."""
        return papers.paper_task(self.tasks, papers.CLASSIFICATION)

    @property
    def translation_task(self) -> str | None:
        """The task of the papers' translation table, if the study has it."""
        return papers.paper_task(self.tasks, papers.TRANSLATION)

    @property
    def focus(self) -> str | None:
        """The classification task the curation, scaling and ledger tables follow."""
        return papers.focus_task(self.tasks, self.kind)

    def scope(self, task: str | None = None) -> str:
        """One line under every table: model, data size, seeds (task: the study's focus, else its first)."""
        n_seeds = len(self.seeds)
        seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
        task = task or self.focus or next(iter(self.tasks), None)
        if task is None:
            return f"*Model `{self.model}`, {seeds}.*"
        if task == self.translation_task:  # directions, each with its own `pairs.{pair}.n`
            n_key = next((k for k in self.runs[0]["metrics"].get(task, {}) if k.endswith(".n")), "-")
            unit = "test sentences per direction"
        else:
            langs = self.task_languages(task)
            n_key, unit = (f"languages.{langs[0]}.n" if langs else "-"), "test examples per language"
        n = self.values(self.runs[:1], task, n_key)
        name = papers.TITLES.get(task, task)
        data = f"{int(n[0])} {name} {unit}" if n and n[0] else name
        return f"*Model `{self.model}`, {data}, {seeds}.*"
