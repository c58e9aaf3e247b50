"""Every metric a study reports, one entry each (as lm-evaluation-harness registers its metrics): the key it
has in results.sqlite, results.json and a run's `ci95`, its kind of task, the name a table gives it, whether higher
is better, how it combines per-language values, how its 95% interval is made, and its digits.

A key with a placeholder stands for one metric per language (`{lang}`), FLORES direction (`{pair}`),
perturbation (`{op}`), or lm-evaluation-harness task and metric (`{task}`, `{metric}`). Over seeds every
metric combines the same way: mean ± sample sd in the tables, and for a bootstrapped metric the interval
of the seed mean.

Entries are kept per kind of task, not per task: `classification` (class probabilities: the papers' XNLI
and any classification task file), `translation` (the papers' FLORES, per direction) and `completion`
(generated text per language: completion and chat task files), beside the run's `footprint` and
`lm_eval` sections. A stored task finds its entries through its kind (`kinds`).

Torch-free and numpy-free: the report and `govtune.evaluation.bootstrap` read it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from govtune.data import papers

# Aggregation: how a metric is made from the per-unit (language or direction) values of its `of` metric.
UNIT = "unit"  # one language's (direction's) own value: nothing to combine
MEAN = "mean"  # unweighted mean over the units (Macro)
RANGE = "max - min"  # spread over the units (parity and direction gaps)
DECILE = "best - worst decile"  # over more than 5 languages: mean of the best decile - mean of the worst

# Interval: how the report gives the metric its 95% interval.
BOOTSTRAP = "bootstrap"  # percentile bootstrap over the test examples (`govtune.evaluation.bootstrap`): one
#                          run's stored ci95, the interval of the seed mean over seeds, and the paired
#                          bootstrap for a difference of two methods
SEEDS = "seeds"  # no interval over test examples: mean ± sd over seeds only

# Bootstrap interval method: which interval of the replicates fits the statistic (see docs/evaluation.md).
# Each contains its point estimate, which the percentile interval of a statistic inflated by resampling does
# not (the basic and BCa intervals do no better there: their endpoints are replicate quantiles too, and they
# contain the estimate exactly when the percentile interval does).
PERCENTILE = "percentile"  # means of per-example values and corpus BLEU/chrF++: replicates centred on the estimate
CENTRED = "centred percentile"  # ECE, a sum of absolute gaps that resampling inflates: the replicates' spread
#                                 around their median, placed around the estimate
PAIRWISE = "pairwise"  # max - min over units: from the simultaneous (Bonferroni) percentile intervals of every
#                        pairwise difference, [largest lower bound (>= 0), largest upper bound]

LANG_LABELS = {"en": "EN", "zh": "ZH", "hi": "HI", "es": "ES"}


@dataclass(frozen=True)
class Metric:
    key: str  # SQLite metric name, with placeholders
    task: str  # the kind of task (classification, translation, completion) or the section (footprint, lm_eval)
    name: str  # table title; its placeholders render as labels (`{lang}` en -> EN, `{pair}` en-zh -> EN→ZH)
    quantity: str  # what is measured, for sentences ("ECE: lower is better") and axis labels
    higher_is_better: bool | None  # None: neither (a temperature; lm-eval's metrics, whichever they are)
    aggregation: str = UNIT
    of: str | None = None  # the per-unit metric a MEAN or RANGE combines
    interval: str = BOOTSTRAP
    digits: int = 1
    method: str = PERCENTILE  # the bootstrap interval's method (PERCENTILE, CENTRED, PAIRWISE)

    @property
    def better(self) -> str:
        """"higher is better", "lower is better", or "" for a metric with no direction."""
        return {True: "higher is better", False: "lower is better", None: ""}[self.higher_is_better]

    def verdict(self, difference: float) -> str:
        """"better" or "worse" for a difference (a - b) of this metric, "" without a direction or at 0."""
        if self.higher_is_better is None or difference == 0:
            return ""
        return "better" if (difference > 0) == self.higher_is_better else "worse"


CLASSIFICATION, TRANSLATION, COMPLETION = papers.CLASSIFICATION, papers.TRANSLATION, "completion"
KINDS = (CLASSIFICATION, TRANSLATION, COMPLETION)
SECTIONS = ("footprint", "lm_eval")  # a run's results beside its tasks': training cost, lm-eval's scores


def _classification(key, name, quantity, higher, **kw):
    return Metric(key, CLASSIFICATION, name, quantity, higher, **kw)


def _translation(key, name, quantity, higher, **kw):
    return Metric(key, TRANSLATION, name, quantity, higher, **kw)


ACC, ECE, ECE_TS, DROP = ("languages.{lang}.accuracy", "languages.{lang}.ece", "languages.{lang}.ece_ts",
                          "robustness.by_language.{lang}.drop")
BLEU, CHRF = "pairs.{pair}.bleu", "pairs.{pair}.chrf"

METRICS: tuple[Metric, ...] = (
    # classification: accuracy and calibration per language, their combinations, robustness (percent and points)
    _classification(ACC, "{lang}", "accuracy", True),
    _classification(ECE, "{lang} ECE", "ECE", False, method=CENTRED),
    _classification("macro", "Macro", "accuracy", True, aggregation=MEAN, of=ACC),
    _classification("parity_gap", "Δ (parity gap)", "parity gap", False, aggregation=RANGE, of=ACC,
          method=PAIRWISE),
    # over more than 5 languages only (SPEC §7); resampling inflates it as it does ECE: the centred interval
    _classification("decile_gap", "Δ (decile gap)", "parity gap", False, aggregation=DECILE, of=ACC,
                    method=CENTRED),
    _classification("avg_ece", "Avg-ECE", "ECE", False, aggregation=MEAN, of=ECE, method=CENTRED),
    _classification(DROP, "{lang} drop", "accuracy drop", False),
    _classification("robustness.macro_drop", "Macro drop", "accuracy drop", False, aggregation=MEAN, of=DROP),
    _classification("robustness.by_operation.{op}.drop", "{op}", "accuracy drop", False, interval=SEEDS),
    # after temperature scaling, fit per run on its validation examples
    _classification(ECE_TS, "{lang} ECE after", "ECE", False, interval=SEEDS),
    _classification("avg_ece_ts", "Avg-ECE after", "ECE", False, aggregation=MEAN, of=ECE_TS, interval=SEEDS),
    _classification("languages.{lang}.temperature", "T {lang}", "temperature", None, interval=SEEDS, digits=2),
    # translation: corpus BLEU and chrF++ per direction and their combinations
    _translation(BLEU, "{pair} BLEU", "BLEU", True),
    _translation(CHRF, "{pair} chrF++", "chrF++", True),
    _translation("average_bleu", "Avg BLEU", "BLEU", True, aggregation=MEAN, of=BLEU),
    _translation("direction_gap", "Δ (direction gap)", "direction gap", False, aggregation=RANGE, of=BLEU,
            method=PAIRWISE),
    _translation("average_chrf", "chrF++ (avg)", "chrF++", True, aggregation=MEAN, of=CHRF),
    # training cost, per run
    Metric("peak_memory_mb", "footprint", "Peak memory (MB)", "peak memory", False, interval=SEEDS, digits=0),
    Metric("step_time_s", "footprint", "Step time (s)", "step time", False, interval=SEEDS, digits=3),
    Metric("tunable_params_m", "footprint", "Tunable params (M)", "tunable parameters", False, interval=SEEDS,
           digits=3),
    # lm-evaluation-harness, values as it reports them (accuracies as fractions)
    Metric("tasks.{task}.{metric}", "lm_eval", "{task} {metric}", "score", None, interval=SEEDS, digits=3),
)


# What a task file's classification task reports beside the papers' (macro-F1 and Brier), and a completion or
# chat task: chrF++, BLEU and exact match per language.
F1, BRIER = "languages.{lang}.macro_f1", "languages.{lang}.brier"
LCHRF, LBLEU, LEM = "languages.{lang}.chrf", "languages.{lang}.bleu", "languages.{lang}.exact_match"
METRICS += (
    Metric(F1, "classification", "{lang} F1", "macro-F1", True, interval=SEEDS),
    Metric("macro_f1", "classification", "Macro-F1", "macro-F1", True, aggregation=MEAN, of=F1, interval=SEEDS),
    Metric(BRIER, "classification", "{lang} Brier", "Brier score", False, interval=SEEDS),
    Metric("avg_brier", "classification", "Avg-Brier", "Brier score", False, aggregation=MEAN, of=BRIER,
           interval=SEEDS),
    Metric(LCHRF, "completion", "{lang} chrF++", "chrF++", True),
    Metric(LBLEU, "completion", "{lang} BLEU", "BLEU", True),
    Metric(LEM, "completion", "{lang} EM", "exact match", True),
    Metric("average_chrf", "completion", "chrF++ (avg)", "chrF++", True, aggregation=MEAN, of=LCHRF),
    Metric("average_bleu", "completion", "Avg BLEU", "BLEU", True, aggregation=MEAN, of=LBLEU),
    Metric("average_exact_match", "completion", "EM (avg)", "exact match", True, aggregation=MEAN, of=LEM),
    Metric("chrf_gap", "completion", "Δ (chrF++ gap)", "chrF++ gap", False, aggregation=RANGE, of=LCHRF,
           method=PAIRWISE),
)

# govtune's per-language analysis of lm-eval's multiple-choice tasks (govtune.evaluation.lm_eval_analysis), in
# percent, under the run's `lm_eval` section: one suite (a group, or tasks named alike) per `{suite}`. A run's
# intervals are its stored ci95 (its samples files are not in the store).
LM = "per_language.{suite}."
LM_ACC, LM_ECE, LM_BRIER, LM_ECE_TS = (LM + "languages.{lang}.accuracy", LM + "languages.{lang}.ece",
                                       LM + "languages.{lang}.brier", LM + "languages.{lang}.ece_ts")
METRICS += (
    Metric(LM_ACC, "lm_eval", "{suite} {lang}", "accuracy", True),
    Metric(LM_ECE, "lm_eval", "{suite} {lang} ECE", "ECE", False, method=CENTRED),
    Metric(LM_BRIER, "lm_eval", "{suite} {lang} Brier", "Brier score", False),
    Metric(LM_ECE_TS, "lm_eval", "{suite} {lang} ECE after", "ECE", False, interval=SEEDS),
    Metric(LM + "languages.{lang}.temperature", "lm_eval", "{suite} T {lang}", "temperature", None, interval=SEEDS,
           digits=2),
    Metric(LM + "languages.{lang}.n", "lm_eval", "{suite} {lang} n", "documents", None, interval=SEEDS, digits=0),
    Metric(LM + "languages.{lang}.n_calibration", "lm_eval", "{suite} {lang} calibration n", "documents", None,
           interval=SEEDS, digits=0),
    Metric(LM + "macro", "lm_eval", "{suite} Macro", "accuracy", True, aggregation=MEAN, of=LM_ACC),
    Metric(LM + "parity_gap", "lm_eval", "{suite} Δ (parity gap)", "parity gap", False, aggregation=RANGE, of=LM_ACC,
           method=PAIRWISE),
    Metric(LM + "decile_gap", "lm_eval", "{suite} Δ (decile gap)", "parity gap", False, aggregation=DECILE,
           of=LM_ACC, method=CENTRED),
    Metric(LM + "avg_ece", "lm_eval", "{suite} Avg-ECE", "ECE", False, aggregation=MEAN, of=LM_ECE, method=CENTRED),
    Metric(LM + "avg_brier", "lm_eval", "{suite} Avg-Brier", "Brier score", False, aggregation=MEAN, of=LM_BRIER),
    Metric(LM + "avg_ece_ts", "lm_eval", "{suite} Avg-ECE after", "ECE", False, aggregation=MEAN, of=LM_ECE_TS,
           interval=SEEDS),
)


def _label(placeholder: str, value: str) -> str:
    if placeholder == "lang":
        return LANG_LABELS.get(value, value)
    if placeholder == "pair":
        return value.replace("-", "→").upper()
    return value


@lru_cache(maxsize=None)
def _pattern(template: str) -> re.Pattern:
    # a placeholder takes any text, so `tasks.{task}.{metric}` splits at the last dot, as lm-eval names allow
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+)" for i, p in enumerate(parts)) + "$")


def kinds(task: str) -> tuple[str, ...]:
    """Where a stored task's entries are: a kind or section by its own name, the papers' tasks by the part they
    play, a task file's task among the classification and completion entries (their keys do not overlap)."""
    if task in KINDS or task in SECTIONS:
        return (task,)
    part = papers.PARTS.get(task)
    return (part,) if part else (CLASSIFICATION, COMPLETION)


def lookup(task: str, key: str) -> tuple[Metric, dict[str, str]]:
    """The entry of a concrete key (`languages.en.accuracy`) and its placeholder values ({"lang": "en"})."""
    where = kinds(task)
    for m in METRICS:
        if m.task in where and (found := _pattern(m.key).match(key)):
            return m, found.groupdict()
    raise KeyError(f"metric {key!r} of task {task!r} is not in govtune.evaluation.metric_registry.METRICS: "
                   f"add its entry there")


def metric(task: str, key: str) -> Metric:
    return lookup(task, key)[0]


def name(task: str, key: str) -> str:
    """A concrete key's table title: `languages.en.accuracy` -> "EN", `pairs.en-zh.bleu` -> "EN→ZH BLEU"."""
    m, values = lookup(task, key)
    return m.name.format(**{k: _label(k, v) for k, v in values.items()})


def combined(kind: str) -> list[Metric]:
    """A kind's metrics made from per-unit values (MEAN, RANGE or DECILE), in registry order."""
    return [m for m in METRICS if m.task == kind and m.aggregation != UNIT]


def unit_key(m: Metric, unit: str) -> str:
    """The key of one unit's value that `m` combines: `languages.{lang}.accuracy` -> `languages.en.accuracy`."""
    return re.sub(r"\{\w+\}", unit, m.of)
