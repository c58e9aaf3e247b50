"""95% intervals over test examples: bootstrap within a run, paired bootstrap between runs. Each metric's
interval is made by the method its registry entry names (`Metric.method`): the percentile interval for
means and corpus BLEU/chrF++, the centred percentile interval for ECE and the decile gap (over more than 5
languages: the mean of the best decile minus that of the worst), the simultaneous pairwise interval
for a max - min gap; every one contains its point estimate (docs/evaluation.md says why each).

Every headline metric is recomputed on each of N_RESAMPLES resamples of the test examples (BLEU and ECE are
corpus-level, so they are recomputed from the resampled set, never averaged per example). Languages (FLORES:
directions) are resampled independently, each keeping its size, so Macro's interval is that of a mean over
languages of fixed sizes.

The resample indices of a unit depend only on (seed, unit name, unit size): every run evaluated on the same
test rows sees the same resamples. That makes the paired difference of two runs, and the mean over several
seeds of one method, a matter of subtracting or averaging their replicate arrays.

Keys are the SQLite metric names of the task (`languages.en.accuracy`, `macro`, `pairs.en-zh.bleu`,
`robustness.macro_drop`, ...); how Macro, the gaps and the averages combine the per-language values is the
metric registry's (`govtune.evaluation.metric_registry`)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from govtune.data import papers
from govtune.data.xnli import LABELS
from govtune.evaluation import metric_registry as registry
from govtune.evaluation.metrics import (MAX_RANGE_LANGUAGES, bleu_metric, chrf_metric, decile_gaps, exact_match,
                                      resampled_calibration_errors)

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
CHANCE = 100.0 / len(LABELS)  # XNLI accuracy of a model that knows nothing

Replicates = dict[str, np.ndarray]  # metric key -> (N_RESAMPLES,) values; index 0 of a point estimate


@lru_cache(maxsize=16)  # a study has a few units; 1,000 x 1,245 int32 indices are 5 MB
def unit_indices(unit: str, n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n) indices drawn with replacement; the same for every run with this unit and size."""
    if n < 1:
        raise ValueError(f"cannot bootstrap {unit!r} with no examples: evaluate at least one")
    rng = np.random.default_rng([seed, zlib.crc32(unit.encode("utf-8"))])
    idx = rng.integers(0, n, size=(n_resamples, n), dtype=np.int32)
    idx.flags.writeable = False  # cached and shared between runs
    return idx


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval (as scipy.stats.bootstrap(method="percentile")): the (1-level)/2 and (1+level)/2
    quantiles of the replicates, linear interpolation."""
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def centred_interval(values: np.ndarray, estimate: float, level: float = LEVEL, floor: float | None = None
                     ) -> tuple[float, float]:
    """The replicates' spread around their median, placed around the estimate: [estimate - (median - q_low),
    estimate + (q_high - median)], the low end no lower than `floor` (ECE: 0). For a statistic that resampling inflates (ECE sums absolute gaps, so a
    resample's ECE is on average larger than the sample's), whose percentile interval sits above the estimate
    and can exclude it. Contains the estimate by construction; the estimate's own bias is not corrected."""
    lo, hi = percentile_interval(values, level)
    median = float(np.median(values))
    low = estimate - (median - lo)
    return (low if floor is None else max(low, floor)), estimate + (hi - median)


def pairwise_range_interval(unit_reps: Sequence[np.ndarray], level: float = LEVEL) -> tuple[float, float]:
    """An interval for max - min over units from their replicates (units resampled independently).

    max - min is the largest pairwise difference, so if every pairwise difference lies in its interval, the
    gap lies in [largest lower bound, largest upper bound]: simultaneous percentile intervals of the
    K (K - 1) / 2 differences (Bonferroni: each at 1 - (1 - level) / pairs) make that a `level` interval, and,
    each containing its difference, it contains the gap. The lower end is 0 when no pair differs
    significantly. (The percentile interval of the replicated max - min does not: resampling noise widens the
    spread of every resample, so at a gap of 0 all its replicates lie above the estimate.)"""
    k = len(unit_reps)
    if k < 2:
        return 0.0, 0.0
    pairs = k * (k - 1) // 2
    pair_level = 1.0 - (1.0 - level) / pairs
    low, high = 0.0, 0.0
    for i in range(k):
        for j in range(i + 1, k):
            lo, hi = percentile_interval(unit_reps[i] - unit_reps[j], pair_level)
            # |a_i - a_j| lies in [max(lo, -hi, 0), max(hi, -lo)] when a_i - a_j lies in [lo, hi]
            low, high = max(low, lo, -hi), max(high, hi, -lo)
    return low, high


def metric_interval(task: str, key: str, point: Replicates, reps: Replicates, level: float = LEVEL
                    ) -> tuple[float, float]:
    """One metric's interval by its registry method, from the point estimates (index 0) and replicates."""
    m = registry.metric(task, key)
    if m.method == registry.PAIRWISE:
        units = sorted(k for k in reps if registry.lookup(task, k)[0].key == m.of)
        return pairwise_range_interval([reps[u] for u in units], level)
    if m.method == registry.CENTRED:
        return centred_interval(reps[key], float(point[key][0]), level, floor=0.0)  # ECE >= 0
    return percentile_interval(reps[key], level)


def intervals(task: str, point: Replicates, reps: Replicates, level: float = LEVEL) -> dict[str, list[float]]:
    """{key: [low, high]} for every replicated metric of a task (the ci95 of a run), each by its registry
    method."""
    return {k: list(metric_interval(task, k, point, reps, level)) for k in reps}


# --- per-task data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XnliUnit:
    """One language's clean test examples: ids in evaluation order, (n, 3) probabilities, gold indices, and
    the predicted index under the example's perturbation (its clean prediction where no operation changed
    it; None when robustness was not evaluated)."""
    ids: tuple
    probs: np.ndarray
    gold: np.ndarray
    perturbed: np.ndarray | None = None


@dataclass(frozen=True)
class FloresUnit:
    """One direction's test sentences: ids, per-sentence BLEU and chrF++ sufficient statistics."""
    ids: tuple
    bleu_stats: np.ndarray
    chrf_stats: np.ndarray
    tgt: str


def xnli_units(records: Sequence[Mapping]) -> dict[str, XnliUnit]:
    """Evaluator records (`evaluate_xnli`'s predictions) -> per-language units. A perturbed copy (robustness)
    is matched to its clean example by (language, id); with no perturbed copy at all, robustness was not
    evaluated and has no interval."""
    by_lang: dict[str, list[Mapping]] = {}
    perturbed: dict[tuple, Mapping] = {}
    for r in records:
        if r.get("perturbation") is None:
            by_lang.setdefault(r["language"], []).append(r)
        else:
            perturbed[(r["language"], _key(r))] = r
    if not by_lang:
        raise ValueError("no clean XNLI predictions to bootstrap: pass evaluate_xnli's records")
    # Classes in the order the evaluator wrote them (XNLI's LABELS for XNLI; a task file's `labels`).
    labels = list(next(iter(by_lang.values()))[0]["probs"])
    units = {}
    for lang, recs in by_lang.items():
        probs = np.array([[r["probs"][lab] for lab in labels] for r in recs], dtype=np.float64)
        pert = None
        if perturbed:
            pert = np.array([labels.index(perturbed[(lang, _key(r))]["prediction"]) if (lang, _key(r)) in perturbed
                             else int(np.argmax(p)) for r, p in zip(recs, probs)])
        units[lang] = XnliUnit(ids=_ids(recs), probs=probs, gold=np.array([labels.index(r["gold"]) for r in recs]),
                               perturbed=pert)
    return units


def flores_units(records: Sequence[Mapping]) -> dict[str, FloresUnit]:
    """Evaluator records (`evaluate_flores`'s predictions) -> per-direction units with sacreBLEU's
    per-sentence statistics, extracted once so each resample is a sum and a formula (as
    sacrebleu.significance's paired bootstrap does)."""
    by_pair: dict[str, list[Mapping]] = {}
    for r in records:
        by_pair.setdefault(r["pair"], []).append(r)
    if not by_pair:
        raise ValueError("no FLORES predictions to bootstrap: pass evaluate_flores's records")
    units = {}
    for pair, recs in by_pair.items():
        tgt = recs[0]["language"]
        hyps, refs = [r["hypothesis"] for r in recs], [[r["reference"] for r in recs]]
        units[pair] = FloresUnit(
            ids=_ids(recs), tgt=tgt,
            bleu_stats=np.array(bleu_metric(tgt)._extract_corpus_statistics(hyps, refs), dtype=np.int64),
            chrf_stats=np.array(chrf_metric()._extract_corpus_statistics(hyps, refs), dtype=np.int64))
    return units


def _key(r: Mapping):
    return str(r["id"]) if r.get("id") is not None else r.get("index")


def _ids(recs: Sequence[Mapping]) -> tuple:
    return tuple(_key(r) if _key(r) is not None else i for i, r in enumerate(recs))


# --- replicates ----------------------------------------------------------------------------------------
def resamples(units: Mapping, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, np.ndarray]:
    return {u: unit_indices(u, len(unit.ids), n_resamples, seed) for u, unit in units.items()}


def identity(units: Mapping) -> dict[str, np.ndarray]:
    """The full test set as one "resample": replicates with these indices are the point estimates."""
    return {u: np.arange(len(unit.ids))[None, :] for u, unit in units.items()}


def xnli_replicates(units: Mapping[str, XnliUnit], idx: Mapping[str, np.ndarray] | None = None) -> Replicates:
    """Per resample: accuracy and ECE per language, Macro, parity gap and Avg-ECE (percent); with robustness,
    the clean - perturbed accuracy drop per language and its mean (paired: the same examples both ways)."""
    idx = resamples(units) if idx is None else idx
    reps: Replicates = {}
    for lang, u in units.items():
        correct = (u.probs.argmax(axis=1) == u.gold).astype(np.float64)
        a = 100.0 * correct[idx[lang]].mean(axis=1)
        e = resampled_calibration_errors(u.probs, u.gold, idx[lang])
        reps[f"languages.{lang}.accuracy"], reps[f"languages.{lang}.ece"] = a, e
        if u.perturbed is not None:
            lost = correct - (u.perturbed == u.gold)
            reps[f"robustness.by_language.{lang}.drop"] = 100.0 * lost[idx[lang]].mean(axis=1)
    return _combine(registry.CLASSIFICATION, reps, units)


def flores_replicates(units: Mapping[str, FloresUnit], idx: Mapping[str, np.ndarray] | None = None
                      ) -> Replicates:
    """Per resample: corpus BLEU and chrF++ per direction (recomputed from the summed sentence statistics),
    their averages and the direction gap."""
    idx = resamples(units) if idx is None else idx
    reps: Replicates = {}
    for pair, u in units.items():
        b_metric, c_metric = bleu_metric(u.tgt), chrf_metric()
        b = np.array([b_metric._compute_score_from_stats(s).score for s in u.bleu_stats[idx[pair]].sum(axis=1)])
        c = np.array([c_metric._compute_score_from_stats(s).score for s in u.chrf_stats[idx[pair]].sum(axis=1)])
        reps[f"pairs.{pair}.bleu"], reps[f"pairs.{pair}.chrf"] = b, c
    return _combine(registry.TRANSLATION, reps, units)


_AGGREGATE = {registry.MEAN: lambda a: a.mean(axis=0), registry.RANGE: lambda a: a.max(axis=0) - a.min(axis=0),
              registry.DECILE: decile_gaps}


def _combine(kind: str, reps: Replicates, units: Mapping) -> Replicates:
    """Add the task's combined metrics (Macro, the gaps, the averages), each as the metric registry defines
    it, on every resample; one that lacks a unit's value (robustness not evaluated) is left out."""
    for m in registry.combined(kind):
        if m.aggregation == registry.DECILE and len(units) <= MAX_RANGE_LANGUAGES:
            continue  # a few languages: max - min says it, deciles of one language would repeat it
        keys = [registry.unit_key(m, u) for u in units]
        if m.interval == registry.BOOTSTRAP and all(k in reps for k in keys):
            reps[m.key] = _AGGREGATE[m.aggregation](np.stack([reps[k] for k in keys]))  # (units, resamples)
    return reps


# The papers' two tasks, by the part they play (govtune.data.papers); a task file's task goes by its records.
REPLICATES = {registry.CLASSIFICATION: (xnli_units, xnli_replicates),
              registry.TRANSLATION: (flores_units, flores_replicates)}


def classification_replicates(units: Mapping[str, XnliUnit], idx: Mapping[str, np.ndarray] | None = None
                              ) -> Replicates:
    """A classification task's replicates: XNLI's, over its own labels (one kind of the metric registry)."""
    return xnli_replicates(units, idx)


@dataclass(frozen=True)
class CompletionUnit:
    """One language's generations: its BLEU / chrF++ statistics (a FloresUnit) and exact matches (0/1)."""
    ids: tuple
    text: FloresUnit
    exact: np.ndarray


def completion_units(records: Sequence[Mapping]) -> dict[str, CompletionUnit]:
    by_lang: dict[str, list[Mapping]] = {}
    for r in records:
        by_lang.setdefault(r["language"], []).append(r)
    text = flores_units([{**r, "pair": r["language"]} for r in records])
    return {lang: CompletionUnit(text[lang].ids, text[lang],
                                 np.array([exact_match(r["hypothesis"], r["reference"]) for r in recs], dtype=np.float64))
            for lang, recs in by_lang.items()}


def completion_replicates(units: Mapping[str, CompletionUnit], idx: Mapping[str, np.ndarray] | None = None
                          ) -> Replicates:
    """Per resample: BLEU and chrF++ per language (as FLORES's per direction), exact match, and their
    combinations by the completion entries of the metric registry."""
    idx = resamples(units) if idx is None else idx
    text = flores_replicates({lang: u.text for lang, u in units.items()}, idx)
    reps = {k.replace("pairs.", "languages.", 1): v for k, v in text.items() if k.startswith("pairs.")}
    for lang, u in units.items():
        reps[f"languages.{lang}.exact_match"] = 100.0 * u.exact[idx[lang]].mean(axis=1)
    return _combine("completion", reps, units)


def replicator(task: str, records: Sequence[Mapping]):
    """(to_units, replicate) of a task's prediction records: the built-in benchmarks by name, a task file's
    task by what its records hold (class probabilities, or generated text)."""
    part = papers.PARTS.get(task)
    if part:
        return REPLICATES[part]
    if records and "probs" in records[0]:
        return xnli_units, classification_replicates
    return completion_units, completion_replicates


def classification_intervals(records: Sequence[Mapping], level: float = LEVEL) -> dict[str, list[float]]:
    units = xnli_units(records)
    return intervals("classification", classification_replicates(units, identity(units)),
                     classification_replicates(units), level)


def completion_intervals(records: Sequence[Mapping], level: float = LEVEL) -> dict[str, list[float]]:
    units = completion_units(records)
    return intervals("completion", completion_replicates(units, identity(units)), completion_replicates(units), level)


def task_intervals(task: str, records: Sequence[Mapping], level: float = LEVEL) -> dict[str, list[float]]:
    """A run's ci95 for one task, from its evaluator records: {metric key: [low, high]}."""
    to_units, replicate = replicator(task, records)
    units = to_units(records)
    return intervals(task, replicate(units, identity(units)), replicate(units), level)


# --- across runs ---------------------------------------------------------------------------------------
def check_same_rows(a: Mapping, b: Mapping) -> None:
    """Paired statistics need both runs on the same test rows in the same order."""
    if list(a) != list(b):
        raise ValueError(f"runs evaluated on different languages/directions ({list(a)} vs {list(b)}): "
                         f"pair only runs of one study")
    for u in a:
        if a[u].ids != b[u].ids:
            raise ValueError(f"runs evaluated on different {u!r} test rows: pair only runs of one study "
                             f"(same evaluation rows and limit)")


def seed_mean(reps: Sequence[Replicates]) -> Replicates:
    """Several runs of one method on the same test rows: the metric averaged over seeds on each resample."""
    if not reps:
        raise ValueError("mean over no runs: pass at least one run's replicates")
    keys = [k for k in reps[0] if all(k in r for r in reps)]
    return {k: np.mean([r[k] for r in reps], axis=0) for k in keys}


@dataclass(frozen=True)
class Difference:
    estimate: float  # a - b on the full test set
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


def paired_differences(point_a: Replicates, reps_a: Replicates, point_b: Replicates, reps_b: Replicates,
                       level: float = LEVEL, task: str | None = None) -> dict[str, Difference]:
    """a - b per metric, its interval from the same resamples of both (replicates built with the same
    indices: `resamples` guarantees it for the same units and sizes). A difference of means is smooth: the
    percentile interval. A difference of statistics that resampling inflates (ECE, a gap; by the registry
    of `task`): the centred one, so that it contains the estimated difference."""
    out = {}
    for k in reps_a:
        if k in reps_b:
            estimate = float(point_a[k][0] - point_b[k][0])
            method = registry.metric(task, k).method if task is not None else registry.PERCENTILE
            diff = reps_a[k] - reps_b[k]
            lo, hi = (percentile_interval(diff, level) if method == registry.PERCENTILE
                      else centred_interval(diff, estimate, level))
            out[k] = Difference(estimate, lo, hi)
    return out
