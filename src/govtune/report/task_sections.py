"""The report's section for each task of a study other than the papers' two (whose tables stay as the papers
print them): one table per task, its columns and titles from the metric registry entries of the task's kind
(per language, the combined metrics), each cell mean ± sd over seeds with its 95% bootstrap interval."""

from __future__ import annotations

from govtune.evaluation import metric_registry as registry
from govtune.report.breadth import breadth_section, is_breadth
from govtune.report.group_differences import group_differences_section
from govtune.report.reading import Study, label, table

# Columns after the per-language ones, by kind, when the runs have them.
COMBINED = {"classification": ("macro", "parity_gap", "decile_gap", "macro_f1", "avg_ece", "avg_ece_ts",
                               "avg_brier", "robustness.macro_drop"),
            "completion": ("average_chrf", "average_bleu", "average_exact_match", "chrf_gap")}
PER_LANGUAGE = {"classification": "accuracy", "completion": "chrf"}


def task_section(s: Study, task: str) -> str:
    metrics = next(r["metrics"][task] for r in s.runs if task in r["metrics"])
    kind = s.kind(task)
    unit = PER_LANGUAGE[kind]
    langs = s.task_languages(task)
    breadth = kind == "classification" and is_breadth(s, task)  # languages as rows, below the table
    keys = ([] if breadth else [f"languages.{lang}.{unit}" for lang in langs]) + [k for k in COMBINED[kind]
                                                                                  if k in metrics]
    header = ["Method", *[registry.name(task, k) for k in keys]]
    rows = [[label(method), *[s.show(s.cell(method), task, k) for k in keys]] for method in s.rows()
            if any(task in r["metrics"] for r in s.cell(method))]
    n = metrics.get(f"languages.{langs[0]}.n") if langs else None
    what = "accuracy per language (%)" if kind == "classification" else "chrF++ per language"
    notes = [f"{registry.name(task, k)}: {m.better}" for k in keys[0 if breadth else len(langs):]
             if (m := registry.metric(task, k)).better]
    what = (f"the task's combined metrics over {len(langs)} languages ({'; '.join(notes)}), then the "
            f"{what} as rows" if breadth else f"{what[0].upper() + what[1:]}, then the task's combined metrics "
            f"({'; '.join(notes)})")
    return (f"### Task `{task}` ({kind})\n\n"
            f"{what[0].upper() + what[1:]}."
            + ("" if breadth else " 95% bootstrap intervals over the test examples in brackets.") + "\n\n"
            f"*Model `{s.model}`, {int(n) if n else '?'} test examples per language, {len(s.seeds)} seed(s).*\n\n"
            + table(header, rows)
            + ("\n\n" + breadth_section(s, task) + group_differences_section(s, task) if breadth else ""))
