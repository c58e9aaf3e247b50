"""The lead of a report over many languages: what the study found, in a few lines before any table (the
significant differences, the languages that trail, the parity gaps, the caveats), and how every interval of
the report is made, stated once here instead of under each table."""

from __future__ import annotations

from govtune.data.papers import TITLES
from govtune.report.breadth import breadth_tasks, focus_method, trailing
from govtune.report.group_differences import significant_group_differences
from govtune.report.reading import Study, label
from govtune.report.significance import interval_method, significant_differences


SHOWN = 6  # trailing languages named in the lead; the report's table lists the whole worst decile


def _trailing_line(s: Study, task: str) -> str:
    runs, focus = s.cell(focus_method(s)), focus_method(s)
    decile = trailing(s, task)
    worst = "; ".join(f"{x.name} {s.show(runs, task, f'languages.{x.code}.accuracy')}" for x in decile[:SHOWN])
    if len(decile) > SHOWN:
        worst += f"; and {len(decile) - SHOWN} more (the table of trailing languages)"
    gap = (f"; decile gap {s.show(runs, task, 'decile_gap')}, max − min {s.show(runs, task, 'parity_gap')}"
           if s.values(runs, task, "decile_gap") else "")
    return (f"{TITLES.get(task, task)} over {len(s.task_languages(task))} languages, {label(focus)}: Macro "
            f"{s.show(runs, task, 'macro')}{gap}. Trailing most (the worst decile, accuracy %): {worst}.")


def findings(s: Study, caveats: list[str]) -> str:
    """The report's lead for a study with a classification task over many languages ("" otherwise)."""
    tasks = breadth_tasks(s)
    if not tasks:
        return ""
    found = significant_differences(s)
    if any(found.values()):
        differences = "Significant differences (paired 95% interval excludes 0): " + "; ".join(
            f"{name}: {', '.join(items)}" for name, items in found.items() if items) + "."
    elif found:
        differences = "No difference between methods is significant: every paired 95% interval covers 0."
    else:
        differences = "One method only: no paired comparison."
    groups = [f"{TITLES.get(t, t)}, {line}" for t in tasks for line in significant_group_differences(s, t)]
    lines = [differences, *groups, *[_trailing_line(s, t) for t in tasks], *[f"Caveat: {c}" for c in caveats]]
    method = interval_method(s).strip()
    return ("## What the study found\n\n" + "\n".join(f"- {line}" for line in lines)
            + (f"\n\nIntervals, throughout this report: {method}" if method else "") + "\n")
