"""The report's differences and significance section: per metric, each method against the baselines and
LoRA, the paired bootstrap difference on the same test rows (`reading.Intervals`), the significant ones
named in words (better or worse, as the metric registry orients each metric), and the XNLI accuracies that
cannot be told from chance."""

from __future__ import annotations

from govtune.data import papers
from govtune.evaluation import bootstrap as bs
from govtune.evaluation import metric_registry as registry
from govtune.report.breadth import breadth_tasks, is_breadth
from govtune.report.reading import Study, label, table

MARK = "*"  # after a difference whose 95% interval excludes 0


def interval_note(s: Study) -> str:
    """The sentence under a table whose cells carry intervals; a study over many languages states it once, at
    the top of its report (govtune.report.findings)."""
    return "" if breadth_tasks(s) else interval_method(s)


def interval_method(s: Study) -> str:
    """How every interval of the report is made."""
    if not any(r.get("ci95") for r in s.runs):
        return ""
    return (" [low, high]: 95% bootstrap interval over the test examples (1,000 resamples, languages resampled "
            "separately; with several seeds, the interval of the seed mean). Accuracy, BLEU and chrF++: the "
            "percentile interval. ECE, which resampling inflates: the resamples' spread around their median, "
            "centred on the estimate. A gap (Δ, max − min over languages): from the simultaneous intervals of "
            "every pairwise difference, so its low end is 0 unless two languages differ significantly. Every "
            "interval contains its estimate."
            + (" The decile gap (over more than 5 languages, the mean of the best tenth of languages minus that of "
               "the worst): the centred interval, as ECE." if breadth_tasks(s) else ""))


def fmt_difference(d: bs.Difference | None, digits: int = 1, mark: bool = True) -> str:
    if d is None:
        return "-"
    # rounding first (+ 0.0 turns -0.0 into 0.0) so that no difference prints as "-0.0"
    est, low, high = (round(x, digits) + 0.0 for x in (d.estimate, d.low, d.high))
    text = f"{est:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"
    return text + f" {MARK}" if mark and d.significant else text


# The papers' two parts, with what their tables compare; any other task is compared on its kind's main metrics.
PART_UNITS = {papers.CLASSIFICATION: "accuracy and ECE, points", papers.TRANSLATION: "BLEU and chrF++"}
TASK_KEYS = {"classification": ("accuracy", ("macro", "avg_ece")),
             "completion": ("chrf", ("average_chrf", "average_exact_match"))}


def _keys(s: Study, task: str) -> list[str]:
    """The metrics compared: XNLI accuracy per language, Macro, Avg-ECE; FLORES BLEU and chrF++ per direction,
    average BLEU; a task file's task: accuracy (chrF++) per language and its combined metrics."""
    if task == s.main_task and is_breadth(s, task):
        return ["macro", "parity_gap", "decile_gap", "avg_ece"]
    if task == s.main_task:
        return [f"languages.{lang}.accuracy" for lang in s.languages] + ["macro", "avg_ece"]
    if task == s.translation_task:
        return [key for pair in s.pairs for key in (f"pairs.{pair}.bleu", f"pairs.{pair}.chrf")] + ["average_bleu"]
    unit, combined = TASK_KEYS[s.kind(task)]
    if s.kind(task) == "classification" and is_breadth(s, task):  # too many languages for columns
        return ["macro", "parity_gap", "decile_gap", "avg_ece"]
    return [f"languages.{lang}.{unit}" for lang in s.task_languages(task)] + list(combined)


def comparisons(s: Study) -> list[tuple[str, str]]:
    """(method, reference): every method against the base model, the in-context baseline and LoRA; a study
    without LoRA (an ablation of one method's variants) compares them with its first method instead."""
    refs = [ref for ref in ("base", "icl", "lora") if s.cell(ref)]
    if "lora" not in refs and len(s.methods) > 1:
        refs.append(s.methods[0])
    return [(m, ref) for ref in refs for m in s.methods if m != ref and s.cell(m)]


def chance_text(s: Study) -> str:
    """Which accuracies (per language and Macro) of the papers' three-class task cannot be told from chance:
    their 95% interval covers 33.3%."""
    task = s.main_task
    if task is None:
        return ""
    accuracies = [key for key in _keys(s, task) if registry.metric(task, key).quantity == "accuracy"]
    at_chance = []
    for method in s.rows():
        runs = s.cell(method)
        hits = []
        for key in accuracies:
            ci = s.intervals.ci(runs, task, key) if runs else None
            if ci and ci[0] <= bs.CHANCE <= ci[1]:
                hits.append(registry.name(task, key))
        if hits:
            at_chance.append(f"{label(method)} ({', '.join(hits)})")
    if not at_chance:
        return ""
    return (f"{papers.title(task)} at chance (95% interval covers 33.3%): " + "; ".join(at_chance)
            + ". These accuracies are not evidence that the model does the task.")


def _significant(task: str, diff: dict[str, bs.Difference], keys: list[str]) -> list[str]:
    """The significant differences in words: "XNLI Avg-ECE -2.1 [-3.0, -1.2] (better)"."""
    out = []
    for key in keys:
        d = diff.get(key)
        if d is not None and d.significant:
            verdict = registry.metric(task, key).verdict(d.estimate)
            out.append(f"{task.upper()} {registry.name(task, key)} {fmt_difference(d, mark=False)}"
                       + (f" ({verdict})" if verdict else ""))
    return out


def _intro(s: Study, tasks: list[str]) -> str:
    lower = sorted({m.quantity for task in tasks for m in (registry.metric(task, k) for k in _keys(s, task))
                    if m.higher_is_better is False})
    orientation = (f" {', '.join(lower)}: lower is better, so a negative difference is an improvement."
                   if lower else "")
    seeds = (" With several seeds each side is its seed mean on the same resamples, so these intervals cover "
             "test-sample noise only; Welch's p in the tables above covers seed-to-seed noise."
             if len(s.seeds) > 1 else "")
    return ("Paired bootstrap of the difference (method − reference) on the same test rows: both runs are "
            "scored on the same 1,000 resamples (languages and directions resampled separately); "
            f"{MARK} marks a difference whose 95% interval excludes 0." + orientation + seeds)


def significant_differences(s: Study) -> dict[str, list[str]]:
    """{comparison: its significant differences in words} over every task, as the section lists them."""
    found: dict[str, list[str]] = {}
    for task in s.tasks:
        if task == "lm_eval":
            continue
        for method, ref in comparisons(s):
            diff = s.intervals.difference(s.cell(method), s.cell(ref), task)
            if diff is not None:
                found.setdefault(f"{label(method)} − {label(ref)}", []).extend(
                    _significant(task, diff, _keys(s, task)))
    return found


def differences_section(s: Study) -> str | None:
    """Paired differences per metric, each method against the base model and LoRA, with the significant
    ones named in words, and the XNLI accuracies at chance; None when there is neither (no per-example
    predictions to pair, no interval covering chance)."""
    parts, compared = [], []
    significant: dict[str, list[str]] = {}  # comparison -> its significant metrics, in words
    for task in s.tasks:
        if task == "lm_eval":
            continue
        part = papers.PARTS.get(task)
        title = f"{papers.title(task)} ({PART_UNITS[part]})" if part else f"Task `{task}` ({s.kind(task)})"
        keys = _keys(s, task)
        rows = []
        for method, ref in comparisons(s):
            diff = s.intervals.difference(s.cell(method), s.cell(ref), task)
            if diff is None:
                continue
            name = f"{label(method)} − {label(ref)}"
            rows.append([name, *[fmt_difference(diff.get(key)) for key in keys]])
            significant.setdefault(name, []).extend(_significant(task, diff, keys))
        if rows:
            compared.append(task)
            header = ["Comparison", *[registry.name(task, key) for key in keys]]
            parts.append(f"#### {title}\n\n{s.scope(task)}\n\n" + table(header, rows))
    chance = chance_text(s)
    if not compared and not chance:
        return None
    if any(significant.values()):
        verdict = ("Significant differences (the paired 95% interval excludes 0); every other difference is "
                   "within test-sample noise:\n\n" + "\n".join(
                       f"- {name}: {', '.join(found) if found else 'none significant'}."
                       for name, found in significant.items()))
    elif compared:
        verdict = "No difference is significant: every paired 95% interval covers 0."
    else:
        verdict = ""
    text = "\n\n".join(x for x in (_intro(s, compared) if compared else "", verdict, chance) if x)
    return ("### Differences and significance\n\n" + text
            + ("\n\n" + "\n\n".join(parts) if parts else ""))
