"""The report at breadth: a classification task over more than BREADTH languages (SIB-200's 205, XNLI's 15)
cannot print one column per language. Its languages become rows (methods the columns), sorted by the focus
method's accuracy and grouped by whether the language was in the tuning set and by script; below them the
languages that trail most (the worst decile) and the mean accuracy per resource class (Joshi et al. 2020)
and per script, each with its 95% interval from the same bootstrap resamples as every other number.

The tuning set of a classification task is the languages whose few-shot pool kept records (the curation
counts of the store); a study that recorded none is grouped by script and resource class only, and says so."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from govtune.evaluation import bootstrap as bs
from govtune.evaluation.metrics import decile_count
from govtune.languages import language_name, resource_level, script
from govtune.report.reading import Study, fmt, label, table

BREADTH = 8  # above this many languages a task's per-language numbers are rows, not columns
JOSHI = ("Joshi et al. (2020), \"The State and Fate of Linguistic Diversity and Inclusion in the NLP World\" "
         "(ACL): class 0 (left behind) to 5 (winners), by the labelled and unlabelled data a language has")


@dataclass(frozen=True)
class Language:
    code: str  # the unit the store keys it by
    name: str
    script: str
    level: int | None  # Joshi et al. class, None where unknown
    tuned: bool | None  # in the tuning set; None when the study recorded no curation counts
    accuracy: float | None  # the focus method's


def _known(code: str, read, default):
    try:
        return read(code)
    except (KeyError, ValueError):  # a task file's own language code, not in the FLORES table
        return default


def is_breadth(s: Study, task: str) -> bool:
    return len(s.task_languages(task)) > BREADTH


def breadth_tasks(s: Study) -> list[str]:
    """The study's classification tasks over more than BREADTH languages."""
    return [t for t in s.tasks if t not in ("lm_eval", "footprint") and s.kind(t) == "classification"
            and is_breadth(s, t)]


def focus_method(s: Study) -> str:
    """The method the languages are sorted by: the last tuned method in the papers' order (the hybrid when it
    ran), else the first baseline."""
    return s.methods[-1] if s.methods else s.rows()[0]


def tuning_languages(s: Study, task: str) -> set[str] | None:
    """The languages with records kept in the task's curated pool at the main stage; None if not recorded."""
    kept = s.kept(s.main_stage if task == s.main_task else f"{task}:{s.main_stage}")
    if not kept or not s.methods:
        return None
    return {lang for lang, n in kept.items() if n}


def languages(s: Study, task: str) -> list[Language]:
    """The task's languages, best first by the focus method's accuracy (a language without one last)."""
    runs, tuned = s.cell(focus_method(s)), tuning_languages(s, task)
    out = []
    for code in s.task_languages(task):
        acc = s.values(runs, task, f"languages.{code}.accuracy")
        out.append(Language(code, _known(code, language_name, code), _known(code, script, "?"),
                            _known(code, resource_level, None), None if tuned is None else code in tuned,
                            float(np.mean(acc)) if acc else None))
    return sorted(out, key=lambda lang: (lang.accuracy is None, -(lang.accuracy or 0.0), lang.code))


def group_mean(s: Study, runs: list[dict], task: str, codes: list[str]) -> str:
    """The mean accuracy of some languages, with the percentile interval of that mean over the resamples."""
    keys = [f"languages.{c}.accuracy" for c in codes]
    values = [np.mean([r["metrics"][task][k] for k in keys]) for r in runs
              if all(k in r["metrics"].get(task, {}) for k in keys)]
    g = s.intervals.group(runs, task) if values else None
    ci = bs.percentile_interval(np.mean([g[2][k] for k in keys], axis=0)) if g and all(k in g[2] for k in keys) \
        else None
    return fmt(values, 1, ci)


def _level(level: int | None) -> str:
    return "?" if level is None else str(level)


SMALL_GROUP = 3  # scripts with fewer languages (of one tuning status) share a group: "other scripts"


def _group_name(lang: Language, script_name: str | None = None) -> str:
    where = {True: "in the tuning set", False: "not tuned on", None: ""}[lang.tuned]
    return f"{script_name or lang.script}" + (f", {where}" if where else "")


def _groups(langs: list[Language]) -> dict[str, list[Language]]:
    """Languages by (tuning set, script), the scripts of fewer than SMALL_GROUP languages together."""
    size: dict[tuple, int] = defaultdict(int)
    for x in langs:
        size[(x.tuned, x.script)] += 1
    groups: dict[str, list[Language]] = defaultdict(list)
    for x in langs:
        small = size[(x.tuned, x.script)] < SMALL_GROUP
        groups[_group_name(x, "other scripts" if small else None)].append(x)
    return groups


def languages_table(s: Study, task: str) -> str:
    """Every language a row (name, code, script, resource class), methods the columns, grouped by tuning set
    and script (groups best first by their mean), sorted by the focus method's accuracy within a group."""
    langs, methods = languages(s, task), [m for m in s.rows() if s.cell(m)]
    groups = _groups(langs)
    order = sorted(groups, key=lambda g: (groups[g][0].tuned is False,
                                          -np.mean([x.accuracy or 0.0 for x in groups[g]]), g))
    header = ["Language", "Code", "Script", "Class", *[label(m) for m in methods]]
    rows = []
    for g in order:
        members = groups[g]
        codes = [x.code for x in members]
        rows.append([f"**{g}** ({len(members)})", "", "", "",
                     *[f"**{group_mean(s, s.cell(m), task, codes)}**" for m in methods]])
        rows += [[x.name, f"`{x.code}`", x.script, _level(x.level),
                  *[s.show(s.cell(m), task, f"languages.{x.code}.accuracy") for m in methods]] for x in members]
    tuned = tuning_languages(s, task)
    grouping = ("grouped by script and by whether the language was in the tuning set (its few-shot pool kept "
                f"records; scripts of fewer than {SMALL_GROUP} languages together)" if tuned is not None else
                "grouped by script only: the study recorded no curation counts, so which languages were tuned "
                "on is not known here")
    return (f"#### Accuracy per language ({len(langs)} languages)\n\n"
            f"Accuracy (%) per language, methods as columns; {grouping}. Groups (bold: the group's mean "
            f"accuracy) best first, languages within a group by {label(focus_method(s))}'s accuracy. Class: the "
            f"language's resource class (0-5, ? where unknown) of {JOSHI}.\n\n" + table(header, rows))


def trailing(s: Study, task: str) -> list[Language]:
    """The worst decile of languages by the focus method's accuracy (a tenth, rounded up), worst first."""
    langs = [x for x in languages(s, task) if x.accuracy is not None]
    return langs[::-1][:decile_count(len(langs))]


def trailing_table(s: Study, task: str) -> str:
    focus = focus_method(s)
    runs = s.cell(focus)
    rows = [[x.name, f"`{x.code}`", x.script, _level(x.level),
             s.show(runs, task, f"languages.{x.code}.accuracy")] for x in trailing(s, task)]
    return (f"#### The languages that trail most\n\nThe worst decile of languages by {label(focus)}'s accuracy, "
            f"worst first, with 95% intervals; Macro for comparison: {s.show(runs, task, 'macro')}.\n\n"
            + table(["Language", "Code", "Script", "Class", f"{label(focus)} accuracy"], rows))


def aggregates_table(s: Study, task: str) -> str:
    """Mean accuracy per resource class and per script, per method, with intervals."""
    langs, methods = languages(s, task), [m for m in s.rows() if s.cell(m)]
    by_level: dict[str, list[str]] = defaultdict(list)
    by_script: dict[str, list[str]] = defaultdict(list)
    for x in langs:
        by_level[f"class {_level(x.level)}"].append(x.code)
        by_script[x.script].append(x.code)
    rows = []
    for kind, groups in (("Resource", by_level), ("Script", by_script)):
        for g in sorted(groups, key=lambda g: (kind == "Script" and -len(groups[g]), g)):
            rows.append([kind, g, str(len(groups[g])),
                         *[group_mean(s, s.cell(m), task, groups[g]) for m in methods]])
    return ("#### Accuracy per resource class and per script\n\nThe unweighted mean accuracy (%) of the "
            "languages in each resource class (Joshi et al. 2020; ? where the taxonomy names no single "
            "language) and each script, with the percentile interval of that mean over the same resamples. "
            "A group of one or two languages is as uncertain as its languages.\n\n"
            + table(["Grouping", "Group", "Languages", *[label(m) for m in methods]], rows))


def parity_text(s: Study, task: str) -> str:
    """Both parity gaps per method: max − min (as for three languages) and the decile gap."""
    parts = []
    for m in s.rows():
        runs = s.cell(m)
        if s.values(runs, task, "decile_gap"):
            parts.append(f"{label(m)} {s.show(runs, task, 'decile_gap')} (max − min "
                         f"{s.show(runs, task, 'parity_gap')})")
    if not parts:
        return ""
    n = len(s.task_languages(task))
    return (f"Parity over {n} languages: the decile gap, the mean accuracy of the best {decile_count(n)} "
            f"languages minus that of the worst {decile_count(n)} (a tenth, rounded up; centred interval from "
            f"the same resamples, which contains it), points: " + "; ".join(parts) + ".")


def breadth_section(s: Study, task: str) -> str:
    """The per-language rows, the trailing languages, the group means and the parity gaps of one task."""
    parts = [languages_table(s, task), trailing_table(s, task), aggregates_table(s, task)]
    parity = parity_text(s, task)
    return (parity + "\n\n" if parity else "") + "\n\n".join(parts)
