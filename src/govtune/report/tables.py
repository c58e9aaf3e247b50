"""The papers' tables in a study's report, for the tasks that play their parts (govtune.data.papers): the
classification task's accuracy, calibration, robustness, curation and few-shot scaling tables, and the
translation task's BLEU table. Each states what its numbers can and cannot show."""

from __future__ import annotations

import math

from govtune.constants import BASELINES
from govtune.data.papers import title
from govtune.evaluation import metric_registry as registry
from govtune.evaluation.calibration import T_MAX, T_MIN
from govtune.evaluation.metric_registry import LANG_LABELS
from govtune.report.breadth import breadth_section, is_breadth
from govtune.report.breadth import languages as breadth_languages
from govtune.report.group_differences import group_differences_section
from govtune.report.ledger import curation_label
from govtune.report.reading import Study, fmt, label, mean, table, welch
from govtune.report.significance import fmt_difference, interval_note


def _names(task: str, keys: list[str]) -> list[str]:
    """Column titles of metric keys, from the metric registry."""
    return [registry.name(task, key) for key in keys]


def _n(s: Study, task: str) -> float | None:
    """Test examples per language of a classification task (its first language's)."""
    langs = s.task_languages(task)
    return (s.values(s.runs[:1], task, f"languages.{langs[0]}.n") or [None])[0] if langs else None


def accuracy_interval(s: Study, task: str) -> str:
    """What one accuracy on n examples can resolve: the 95% binomial half-width at 50% accuracy."""
    n = _n(s, task)
    if not n:
        return ""
    half = 196 * math.sqrt(0.25 / n)
    k = len(s.task_languages(task)) or 3
    return (f" With {int(n)} examples per language one accuracy has a 95% interval of about ±{half:.0f} "
            f"points (±{half / math.sqrt(k):.0f} for Macro over {'three' if k == 3 else k} languages): smaller "
            f"differences between methods are not evidence. Chance is 33.3%.")


# --- tables ------------------------------------------------------------------------------------------
def main_table(s: Study, task: str) -> str:
    if is_breadth(s, task):
        return breadth_main_table(s, task)
    keys = [f"languages.{lang}.accuracy" for lang in s.languages] + ["macro", "parity_gap", "avg_ece"]
    header = ["Method", *_names(task, keys), "p (Macro vs LoRA)"]
    lora = s.values(s.cell("lora"), task, "macro")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs:
            continue
        macro = s.values(runs, task, "macro")
        rows.append([label(method), *[s.show(runs, task, key) for key in keys],
                     "-" if method == "lora" or method in BASELINES else welch(macro, lora)])
    gap = registry.metric(task, "parity_gap")
    return (f"### {title(task)}, {s.main_shots}-shot per language, curation {s.main_stage.upper()}\n\n"
            f"Accuracy (%), Macro = unweighted mean over languages, Δ = max - min accuracy ({gap.better}), "
            f"Avg-ECE = mean expected calibration error (%, 15 bins). Mean ± sd over seeds."
            f"{interval_note(s)}{accuracy_interval(s, task)}\n\n{s.scope()}\n\n" + table(header, rows))


def breadth_main_table(s: Study, task: str) -> str:
    """The main table over many languages: the combined metrics per method, then the languages as rows
    (govtune.report.breadth); the interval method is stated once, at the top of the report."""
    keys = [k for k in ("macro", "parity_gap", "decile_gap", "avg_ece") if s.values(s.runs, task, k)]
    lora = s.values(s.cell("lora"), task, "macro")
    rows = [[label(m), *[s.show(s.cell(m), task, k) for k in keys],
             "-" if m == "lora" or m in BASELINES else welch(s.values(s.cell(m), task, "macro"), lora)]
            for m in s.rows() if s.cell(m)]
    return (f"### {title(task)}, {s.main_shots}-shot per language, curation {s.main_stage.upper()}\n\n"
            f"Accuracy (%), Macro = unweighted mean over {len(s.task_languages(task))} languages, Δ = max - min "
            f"accuracy, decile gap = best-decile mean - worst-decile mean (both lower is better), Avg-ECE = "
            f"mean expected calibration error (%, 15 bins). Mean ± sd over seeds.{accuracy_interval(s, task)}"
            f"\n\n{s.scope()}\n\n" + table(["Method", *_names(task, keys), "p (Macro vs LoRA)"], rows)
            + "\n\n" + breadth_section(s, task) + group_differences_section(s, task))


def calibration_table(s: Study, task: str) -> str:
    """ECE before and after per-language temperature scaling, per method, with the temperatures."""
    langs = s.languages
    header = ["Method", f"{registry.name(task, 'avg_ece')} before", registry.name(task, "avg_ece_ts"),
              *[f"{registry.name(task, f'languages.{lang}.ece')} before → after" for lang in langs],
              f"T ({' / '.join(LANG_LABELS.get(lang, lang) for lang in langs)})"]
    t_digits = registry.metric(task, f"languages.{langs[0]}.temperature").digits
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not s.values(runs, task, "avg_ece_ts"):
            continue
        temps = [mean(s.values(runs, task, f"languages.{lang}.temperature")) for lang in langs]
        rows.append([label(method), s.show(runs, task, "avg_ece", interval=False),
                     s.show(runs, task, "avg_ece_ts", interval=False),
                     *[f"{s.show(runs, task, f'languages.{lang}.ece', interval=False)} → "
                       f"{s.show(runs, task, f'languages.{lang}.ece_ts', interval=False)}" for lang in langs],
                     " / ".join("-" if t is None else f"{t:.{t_digits}f}" for t in temps)])
    if is_breadth(s, task):  # many languages: languages as rows, each method's before → after (T) a column
        header, rows = _calibration_rows(s, task)
    n_val = (s.values(s.runs, task, f"languages.{langs[0]}.calibration_n") or [None])[0]
    val = f"{int(n_val)} validation examples per language" if n_val else "the run's validation examples"
    return (f"### Calibration: temperature scaling ({s.main_shots}-shot, curation {s.main_stage.upper()})\n\n"
            f"One temperature T per language, fit by NLL (LBFGS on log T) on {val} (drawn from the curated "
            f"pool minus the shots; for the base model from the raw pool; never test rows), applied to the "
            f"test probabilities as softmax(log p / T). ECE in % (15 bins, top label), mean ± sd over seeds; T "
            f"is the mean over seeds (T > 1: the model was over-confident). Scaling never changes a "
            f"prediction, so accuracy is unchanged. T fit on a few examples is noisy and can raise the ECE; "
            f"T near {T_MIN:g} or at {T_MAX:g} is the end of the search (validation examples all right or all "
            f"wrong).\n\n"
            f"{s.scope()}\n\n" + table(header, rows))


def _calibration_rows(s: Study, task: str) -> tuple[list[str], list[list[str]]]:
    """The calibration table over many languages: a row per language (best first, as the accuracy rows), a
    column per method holding ECE before → after and the temperature."""
    methods = [m for m in s.rows() if s.values(s.cell(m), task, "avg_ece_ts")]
    t_digits = registry.metric(task, f"languages.{s.task_languages(task)[0]}.temperature").digits

    def cell(runs, before, after, temperature=None):
        t = mean(s.values(runs, task, temperature)) if temperature else None
        return (f"{s.show(runs, task, before, interval=False)} → {s.show(runs, task, after, interval=False)}"
                + ("" if t is None else f" (T {t:.{t_digits}f})"))

    rows = [["Avg-ECE", *[cell(s.cell(m), "avg_ece", "avg_ece_ts") for m in methods]]]
    rows += [[f"{x.name} (`{x.code}`)", *[cell(s.cell(m), f"languages.{x.code}.ece", f"languages.{x.code}.ece_ts",
                                               f"languages.{x.code}.temperature") for m in methods]]
             for x in breadth_languages(s, task)]
    return ["Language", *[f"{label(m)}: ECE before → after (T)" for m in methods]], rows


def translation_table(s: Study, task: str) -> str:
    keys = [f"pairs.{pair}.bleu" for pair in s.pairs] + ["average_bleu", "direction_gap"]
    header = ["Method", *_names(task, keys), registry.name(task, "average_chrf"), "p (Avg vs LoRA)"]
    chrf_digits = registry.metric(task, "average_chrf").digits
    lora = s.values(s.cell("lora"), task, "average_bleu")
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not runs or not s.values(runs, task, "average_bleu"):
            continue
        # the mean over the study's directions, recomputed: stores of older runs have no average_chrf
        chrf = [mean([r["metrics"][task].get(f"pairs.{pair}.chrf") for pair in s.pairs]) for r in runs]
        avg = s.values(runs, task, "average_bleu")
        rows.append([label(method), *[s.show(runs, task, key) for key in keys],
                     fmt(chrf, chrf_digits, s.intervals.ci(runs, task, "average_chrf")),
                     "-" if method == "lora" or method in BASELINES else welch(avg, lora)])
    n_train = s.task_setting("flores", "flores_train_pairs") or s.main_shots
    sample = f" (with the {s.main_shots}-shot {title(s.main_task)} sample)" if s.main_task else ""
    return (f"### {title(task)}, {n_train} training sentences per direction{sample}\n\n"
            "Detokenised corpus BLEU (sacreBLEU; `zh` tokenisation for Chinese targets, `13a` otherwise), "
            "their average and the direction gap; chrF++ beside it. Corpus BLEU on a few dozen sentences moves "
            f"by several points with the sample; compare methods on the same sentences only.{interval_note(s)}\n\n"
            f"{s.scope(task)}\n\n" + table(header, rows))


def robustness_table(s: Study, task: str) -> str:
    ops = sorted({k.split(".")[2] for r in s.runs for k in r["metrics"].get(task, {})
                  if k.startswith("robustness.by_operation.")} - {"none"})
    drop = registry.metric(task, "robustness.macro_drop")
    op_keys = [f"robustness.by_operation.{op}.drop" for op in ops]
    header = ["Method", f"{drop.name} (pp, {drop.better})", *_names(task, op_keys)]
    rows = []
    for method in s.rows():
        runs = s.cell(method)
        if not s.values(runs, task, drop.key):
            continue
        rows.append([label(method), s.show(runs, task, drop.key),
                     *[s.show(runs, task, key, interval=False) for key in op_keys]])
    return (f"### {title(task)} robustness to orthographic variants\n\n"
            "Each test example is perturbed by exactly one operation (punctuation normalisation, diacritics "
            "removal, whitespace compaction; chosen with the run's seed). Macro-accuracy drop from clean to "
            "perturbed, in points; per-operation columns as reported by the evaluator. Examples no operation "
            "changes keep their clean score, so the drop is bounded by the share actually perturbed; a model "
            f"at chance has no accuracy to lose.{interval_note(s)}\n\n{s.scope()}\n\n" + table(header, rows))


def curation_table(s: Study, task: str) -> str:
    header = ["Method", "Stage", registry.name(task, "macro"), "Δ", registry.name(task, "avg_ece"),
              "Pool kept (per language)"]
    rows = []
    for method in s.methods:
        for stage in s.stages:
            runs = s.cell(method, stage=stage)
            if not runs:
                continue
            rows.append([label(method), curation_label(stage), s.show(runs, task, "macro"),
                         s.show(runs, task, "parity_gap"), s.show(runs, task, "avg_ece"),
                         _kept(s, stage, task)])
    return (f"### Data curation ablation ({title(task)}, {s.main_shots}-shot)\n\n"
            "C0 = raw pool; C1 = + language identification + exact/near-duplicate removal; C2 = C1 + length, "
            "symbol/repetition and perplexity filters. Leakage against the evaluation rows is checked at "
            "every stage.\n\n" f"{s.scope()}\n\n" + table(header, rows))


def _kept(s: Study, stage: str, task: str) -> str:
    # the pool of the papers' task is curated as the stage itself; a task file's pool as TASK:STAGE
    counts = {lang: n for lang, n in s.kept(stage if task == s.main_task else f"{task}:{stage}").items() if n}
    return ", ".join(f"{lang}: {n}" for lang, n in sorted(counts.items())) or "-"


def scaling_table(s: Study, task: str) -> str:
    shots = [k for k in s.shots if k > 0]
    base = s.values(s.cell("base"), task, "macro")
    header = ["Method", *(["0 (base)"] if base else []), *[str(k) for k in shots]]
    rows = []
    for method in s.methods:
        rows.append([label(method), *([s.show(s.cell("base"), task, "macro")] if base else []),
                     *[s.show(s.cell(method, shots=k), task, "macro") for k in shots]])
    text = (f"### Few-shot scaling ({title(task)} Macro accuracy, curation {s.main_stage.upper()})\n\n"
            "Examples per language; 0 is the base model without tuning (one run: it has no seed).\n\n"
            f"{s.scope()}\n\n" + table(header, rows))
    gains = _gains_over_base(s, task, shots) if base else None
    return text + ("\n\n" + gains if gains else "")


def _gains_over_base(s: Study, task: str, shots: list[int]) -> str | None:
    """Each budget's Macro minus the base model's, paired on the same test rows: the budget where the
    interval first excludes 0 is where tuning measurably leaves the untuned model."""
    rows = []
    for method in s.methods:
        diffs = [s.intervals.difference(s.cell(method, shots=k), s.cell("base"), task) for k in shots]
        if all(d is None for d in diffs):
            continue
        rows.append([f"{label(method)} − Base", *[fmt_difference(d.get("macro")) if d else "-" for d in diffs]])
    if not rows:
        return None
    return ("Macro minus the base model's, in points, paired on the same test rows (1,000 resamples; * : the "
            "95% interval excludes 0):\n\n" + table(["Comparison", *[str(k) for k in shots]], rows))
