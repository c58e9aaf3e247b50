"""Paired method differences per language group, in the report at breadth: does a method transfer to
low-resource and never-tuned languages better than LoRA? Group means per method with their own intervals
cannot say; the paired bootstrap can: both methods are scored on the same test sentences, and their
replicates are built with the same resample indices per language (`reading.Intervals.group`), so the
per-resample difference `reps_a[k] - reps_b[k]` is the paired bootstrap of the difference (as in
`bootstrap.paired_differences`).

For each comparison the report makes (`significance.comparisons`) and each group of languages (all of them,
the tuning set and the languages not tuned on, each resource class of Joshi et al. 2020), the estimate is the
unweighted mean over the group's languages of the stored per-language accuracy difference (seed means), its
95% interval the percentile interval of that mean over the resamples. Then, for each method against LoRA,
the difference of differences between low- and high-resource languages (and between the languages not tuned
on and the tuning set), from the same replicates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from govtune.constants import BASELINES
from govtune.evaluation import bootstrap as bs
from govtune.report.breadth import JOSHI, languages, tuning_languages
from govtune.report.reading import Study, label, table
from govtune.report.significance import MARK, comparisons, fmt_difference

LOW_RESOURCE = (0, 1, 2)  # Joshi et al. classes: left behind, scraping-bys, hopefuls
HIGH_RESOURCE = (4, 5)  # underdogs and winners; class 3 (rising stars) and unknown classes are in neither
ALL, TUNED, UNTUNED = "all languages", "in the tuning set", "not tuned on"


@dataclass(frozen=True)
class Group:
    name: str
    codes: tuple[str, ...]


@dataclass(frozen=True)
class Paired:
    """One comparison on one task: per language, the stored accuracy difference (seed means, method −
    reference) and its paired replicates (one value per resample; None without stored predictions)."""
    estimate: dict[str, float]
    replicates: dict[str, np.ndarray] | None

    def difference(self, codes: tuple[str, ...]) -> tuple[float, np.ndarray | None] | None:
        """The mean difference over some languages and its replicates; None if a language lacks a value."""
        if not codes or any(c not in self.estimate for c in codes):
            return None
        reps = self.replicates
        has_reps = reps is not None and all(c in reps for c in codes)
        return (float(np.mean([self.estimate[c] for c in codes])),
                np.mean([reps[c] for c in codes], axis=0) if has_reps else None)


def groups(s: Study, task: str) -> list[Group]:
    """All languages, then by tuning status (when the study recorded it), then by resource class (0-5, ?);
    a group without languages is left out."""
    langs = languages(s, task)
    out = [Group(ALL, tuple(x.code for x in langs))]
    if tuning_languages(s, task) is not None:
        out += [Group(name, tuple(x.code for x in langs if x.tuned is tuned))
                for name, tuned in ((TUNED, True), (UNTUNED, False))]
    for level in (0, 1, 2, 3, 4, 5, None):
        out.append(Group(f"class {'?' if level is None else level}",
                         tuple(x.code for x in langs if x.level == level)))
    return [g for g in out if g.codes]


def contrasts(s: Study, task: str) -> list[tuple[str, Group, Group]]:
    """(name, first, second): the difference of a comparison's differences between two groups of languages;
    only where both groups have languages."""
    langs = languages(s, task)
    low, high = (Group(f"classes {levels[0]}-{levels[-1]}", tuple(x.code for x in langs if x.level in levels))
                 for levels in (LOW_RESOURCE, HIGH_RESOURCE))
    pairs = [(f"low − high resource ({low.name} − {high.name})", low, high)]
    if tuning_languages(s, task) is not None:
        by = {g.name: g for g in groups(s, task)}
        pairs.append((f"{UNTUNED} − {TUNED}", by.get(UNTUNED, Group(UNTUNED, ())), by.get(TUNED, Group(TUNED, ()))))
    return [(name, a, b) for name, a, b in pairs if a.codes and b.codes]


def paired(s: Study, method: str, ref: str, task: str) -> Paired | None:
    """The per-language differences of one comparison; None when either side lacks a language's accuracy."""
    runs_a, runs_b = s.cell(method), s.cell(ref)
    codes = s.task_languages(task)
    estimate = {}
    for c in codes:
        a, b = (s.values(runs, task, f"languages.{c}.accuracy") for runs in (runs_a, runs_b))
        if a and b:
            estimate[c] = float(np.mean(a) - np.mean(b))
    if not estimate:
        return None
    ga, gb = s.intervals.group(runs_a, task), s.intervals.group(runs_b, task)
    reps = None
    if ga is not None and gb is not None:
        try:
            bs.check_same_rows(ga[0], gb[0])
        except ValueError:  # not the same test rows: no pairing, the estimate alone
            ga = None
        if ga is not None:
            reps = {c: ga[2][k] - gb[2][k] for c in codes
                    if (k := f"languages.{c}.accuracy") in ga[2] and k in gb[2]}
    return Paired(estimate, reps)


def interval(value: tuple[float, np.ndarray | None] | None) -> bs.Difference | None:
    """A difference with the percentile interval of its replicates (None without replicates)."""
    if value is None or value[1] is None:
        return None
    return bs.Difference(value[0], *bs.percentile_interval(value[1]))


def contrast(p: Paired, first: Group, second: Group) -> tuple[float, np.ndarray | None] | None:
    """(difference on first) − (difference on second), its replicates from the same resamples."""
    a, b = p.difference(first.codes), p.difference(second.codes)
    if a is None or b is None:
        return None
    return a[0] - b[0], (a[1] - b[1] if a[1] is not None and b[1] is not None else None)


def _compared(s: Study, task: str) -> list[tuple[str, str, Paired]]:
    """The report's comparisons with paired replicates on this task."""
    out = []
    for method, ref in comparisons(s):
        p = paired(s, method, ref, task)
        if p is not None and p.replicates:
            out.append((method, ref, p))
    return out


def _name(method: str, ref: str) -> str:
    return f"{label(method)} − {label(ref)}"


def group_differences_section(s: Study, task: str) -> str:
    """The table of paired differences per language group and the low- vs high-resource contrast ("" when
    there is no comparison with stored predictions to pair)."""
    compared = _compared(s, task)
    if not compared:
        return ""
    gs = groups(s, task)
    rows = [[g.name, str(len(g.codes)), *[fmt_difference(interval(p.difference(g.codes))) for _, _, p in compared]]
            for g in gs]
    tuning = (f" In the tuning set: the languages whose few-shot pool kept records; {UNTUNED}: evaluated only."
              if tuning_languages(s, task) is not None else
              " Which languages were tuned on is not recorded here, so there are no tuning-status rows.")
    text = ("#### Paired differences per language group\n\n"
            "Difference in accuracy (points, method − reference) per group of languages: the unweighted mean over "
            "the group's languages of each language's accuracy difference, both methods scored on the same test "
            "sentences, with the 95% percentile interval of that mean over the same resamples (each language's "
            "sentences resampled separately; with several seeds, the seed means on each resample). "
            f"{MARK} marks an interval that excludes 0. All languages: the difference in Macro. Class: the resource "
            f"class of {JOSHI}.{tuning}\n\n"
            + table(["Group", "Languages", *[_name(m, r) for m, r, _ in compared]], rows))
    return "\n\n" + text + _contrast_table(s, task, compared)


def _contrast_table(s: Study, task: str, compared: list[tuple[str, str, Paired]]) -> str:
    tuned_refs = [(m, r, p) for m, r, p in compared if r not in BASELINES]
    cs = contrasts(s, task)
    if not tuned_refs or not cs:
        return ""
    ref = label(tuned_refs[0][1])
    rows = [[name, *[fmt_difference(interval(contrast(p, a, b))) for _, _, p in tuned_refs]] for name, a, b in cs]
    return (f"\n\n#### Who gains where: differences of paired differences\n\n"
            f"Does a method gain more over {ref} on low-resource languages? (method − {ref} on classes "
            f"{LOW_RESOURCE[0]}-{LOW_RESOURCE[-1]}) − (method − {ref} on classes {HIGH_RESOURCE[0]}-"
            f"{HIGH_RESOURCE[-1]}), points, each side the mean over all that side's languages, the interval from the "
            f"same resamples; "
            f"positive and {MARK}: the method gains significantly more over {ref} where resources are low. Class 3 "
            f"and languages of unknown class are in neither group."
            + (f" {UNTUNED.capitalize()} − {TUNED}: the same between the languages evaluated only and the "
               "tuning set."
               if any(name.startswith(UNTUNED) for name, _, _ in cs) else "")
            + " A contrast is shown only where both its groups have languages.\n\n"
            + table(["Contrast", *[_name(m, r) for m, r, _ in tuned_refs]], rows))


def significant_group_differences(s: Study, task: str) -> list[str]:
    """For the report's lead: one sentence per method against LoRA (the tuned reference; against the base
    model every group usually differs, and the table has it) with a significant group difference or contrast
    (all languages left out: it is the Macro difference, which the lead names already)."""
    cs = contrasts(s, task)
    out = []
    for method, ref, p in _compared(s, task):
        if ref in BASELINES:
            continue
        found = [f"{g.name} {fmt_difference(d, mark=False)}" for g in groups(s, task) if g.name != ALL
                 if (d := interval(p.difference(g.codes))) is not None and d.significant]
        found += [f"{name} {fmt_difference(d, mark=False)}" for name, a, b in cs
                  if (d := interval(contrast(p, a, b))) is not None and d.significant]
        if found:
            out.append(f"{_name(method, ref)} by language group (accuracy points, paired): {'; '.join(found)}.")
    return out
