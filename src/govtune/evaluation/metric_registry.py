"""Every metric a study reports, one entry each (as lm-evaluation-harness registers its metrics): the key it
has in results.sqlite, results.json and a run's `ci95`, its task, the name a table gives it, whether higher
is better, how it combines per-language values, how its 95% interval is made, and its digits.

A key with a placeholder stands for one metric per language (`{lang}`), FLORES direction (`{pair}`),
perturbation (`{op}`), or lm-evaluation-harness task and metric (`{task}`, `{metric}`). Over seeds every
metric combines the same way: mean ± sample sd in the tables, and for a bootstrapped metric the interval
of the seed mean.

Torch-free and numpy-free: the report and `govtune.evaluation.bootstrap` read it."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

# Aggregation: how a metric is made from the per-unit (language or direction) values of its `of` metric.
UNIT = "unit"  # one language's (direction's) own value: nothing to combine
MEAN = "mean"  # unweighted mean over the units (Macro)
RANGE = "max - min"  # spread over the units (parity and direction gaps)

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
    task: str  # the SQLite task: xnli, flores, footprint, lm_eval
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


def _xnli(key, name, quantity, higher, **kw):
    return Metric(key, "xnli", name, quantity, higher, **kw)


def _flores(key, name, quantity, higher, **kw):
    return Metric(key, "flores", name, quantity, higher, **kw)


ACC, ECE, ECE_TS, DROP = ("languages.{lang}.accuracy", "languages.{lang}.ece", "languages.{lang}.ece_ts",
                          "robustness.by_language.{lang}.drop")
BLEU, CHRF = "pairs.{pair}.bleu", "pairs.{pair}.chrf"

METRICS: tuple[Metric, ...] = (
    # XNLI: accuracy and calibration per language, their combinations, robustness (percent and points)
    _xnli(ACC, "{lang}", "accuracy", True),
    _xnli(ECE, "{lang} ECE", "ECE", False, method=CENTRED),
    _xnli("macro", "Macro", "accuracy", True, aggregation=MEAN, of=ACC),
    _xnli("parity_gap", "Δ (parity gap)", "parity gap", False, aggregation=RANGE, of=ACC,
          method=PAIRWISE),
    _xnli("avg_ece", "Avg-ECE", "ECE", False, aggregation=MEAN, of=ECE, method=CENTRED),
    _xnli(DROP, "{lang} drop", "accuracy drop", False),
    _xnli("robustness.macro_drop", "Macro drop", "accuracy drop", False, aggregation=MEAN, of=DROP),
    _xnli("robustness.by_operation.{op}.drop", "{op}", "accuracy drop", False, interval=SEEDS),
    # after temperature scaling, fit per run on its validation examples
    _xnli(ECE_TS, "{lang} ECE after", "ECE", False, interval=SEEDS),
    _xnli("avg_ece_ts", "Avg-ECE after", "ECE", False, aggregation=MEAN, of=ECE_TS, interval=SEEDS),
    _xnli("languages.{lang}.temperature", "T {lang}", "temperature", None, interval=SEEDS, digits=2),
    # FLORES: corpus BLEU and chrF++ per direction and their combinations
    _flores(BLEU, "{pair} BLEU", "BLEU", True),
    _flores(CHRF, "{pair} chrF++", "chrF++", True),
    _flores("average_bleu", "Avg BLEU", "BLEU", True, aggregation=MEAN, of=BLEU),
    _flores("direction_gap", "Δ (direction gap)", "direction gap", False, aggregation=RANGE, of=BLEU,
            method=PAIRWISE),
    _flores("average_chrf", "chrF++ (avg)", "chrF++", True, aggregation=MEAN, of=CHRF),
    # training cost, per run
    Metric("peak_memory_mb", "footprint", "Peak memory (MB)", "peak memory", False, interval=SEEDS, digits=0),
    Metric("step_time_s", "footprint", "Step time (s)", "step time", False, interval=SEEDS, digits=3),
    Metric("tunable_params_m", "footprint", "Tunable params (M)", "tunable parameters", False, interval=SEEDS,
           digits=3),
    # lm-evaluation-harness, values as it reports them (accuracies as fractions)
    Metric("tasks.{task}.{metric}", "lm_eval", "{task} {metric}", "score", None, interval=SEEDS, digits=3),
)


# A task file's task has the entries of its kind: a classification task those of XNLI (same keys) plus
# macro-F1 and Brier, a completion or chat task chrF++, BLEU and exact match per language.
KINDS = ("classification", "completion")
F1, BRIER = "languages.{lang}.macro_f1", "languages.{lang}.brier"
LCHRF, LBLEU, LEM = "languages.{lang}.chrf", "languages.{lang}.bleu", "languages.{lang}.exact_match"
METRICS += tuple(replace(m, task="classification") for m in METRICS if m.task == "xnli") + (
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


def lookup(task: str, key: str) -> tuple[Metric, dict[str, str]]:
    """The entry of a concrete key (`languages.en.accuracy`) and its placeholder values ({"lang": "en"})."""
    for m in METRICS:
        if m.task == task and (found := _pattern(m.key).match(key)):
            return m, found.groupdict()
    if task not in {m.task for m in METRICS}:  # a task file's task: its kind's entries (their keys do not overlap)
        for m in METRICS:
            if m.task in KINDS and (found := _pattern(m.key).match(key)):
                return m, found.groupdict()
    raise KeyError(f"metric {key!r} of task {task!r} is not in govtune.evaluation.metric_registry.METRICS: "
                   f"add its entry there")


def metric(task: str, key: str) -> Metric:
    return lookup(task, key)[0]


def name(task: str, key: str) -> str:
    """A concrete key's table title: `languages.en.accuracy` -> "EN", `pairs.en-zh.bleu` -> "EN→ZH BLEU"."""
    m, values = lookup(task, key)
    return m.name.format(**{k: _label(k, v) for k, v in values.items()})


def combined(task: str) -> list[Metric]:
    """The task's metrics made from per-unit values (MEAN or RANGE), in registry order."""
    return [m for m in METRICS if m.task == task and m.aggregation != UNIT]


def unit_key(m: Metric, unit: str) -> str:
    """The key of one unit's value that `m` combines: `languages.{lang}.accuracy` -> `languages.en.accuracy`."""
    return re.sub(r"\{\w+\}", unit, m.of)
