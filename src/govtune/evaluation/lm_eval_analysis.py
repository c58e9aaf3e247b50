"""govtune's per-language analysis of any lm-evaluation-harness multiple-choice task, from lm-eval's own
samples files (`govtune.evaluation.lm_eval_samples`).

Class probabilities are the softmax over the choices of lm-eval's raw per-choice log-likelihood sums: the
numbers whose arg-max is lm-eval's `acc`, so the accuracy here is lm-eval's `acc` (in percent). `acc_norm`
divides each sum by the choice's character length, which the samples file keeps only with the task's
delimiter in front: it is not reconstructed. Per language (one subtask each, or the documents of one `lang`
in a task whose documents carry it, as `govtune export`'s do): accuracy, ECE (15 equal-width
bins, top label, L1, percent), Brier (percent); over a suite of languages: Macro, Avg-ECE, Avg-Brier, the
parity gap (max - min) and, over more than 5 languages, the gap between the mean accuracies of the best and
the worst decile of languages. Intervals come from govtune's bootstrap (`govtune.evaluation.bootstrap`,
the same resamples, methods and seed as a study's XNLI): percentile for accuracies, Brier and Macro,
centred percentile for ECE and the decile gap, the pairwise interval for max - min; each contains its
estimate. Temperature scaling (one T per language, by NLL) is fit on the samples of other tasks the user
names (a validation split), never on the scored documents, and refused when they share a document.
Two runs on the same documents compare by the paired bootstrap of their differences."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from govtune.evaluation import bootstrap
from govtune.evaluation.calibration import TemperatureScaling
from govtune.evaluation.lm_eval_samples import (MULTIPLE_CHOICE, ChoiceScores, LmEvalRun, choice_scores, normalise,
                                               suites, task_language)
# the decile gap is the classification evaluator's too: one definition, in metrics
from govtune.evaluation.metrics import MAX_RANGE_LANGUAGES, expected_calibration_error
from govtune.evaluation.metrics import decile_gaps as decile_gap

PER_LANGUAGE_FILE = "per_language.json"
COMPARISON_FILE = "comparison.json"
KIND = "classification"  # the metric registry's entries these keys share (intervals by its methods)
SCORES = ("class probabilities = softmax over the choices of lm-eval's raw per-choice log-likelihood sums "
          "(the scores lm-eval's acc takes the arg-max of; acc_norm's length-normalised scores are not used)")


@dataclass(frozen=True)
class Plan:
    """What a run's analysis covers, decided from task names before any scoring: {suite: {language: task}}
    of the scored tasks, {language: task} of the calibration tasks, and the tasks left out, with why."""
    suites: dict[str, dict[str, str]]
    calibration: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    by_document: list[str] = field(default_factory=list)  # one task, a suite of its own: each doc's `lang`


def _leaves(names: Iterable[str], group_subtasks: Mapping[str, list[str]]) -> list[str]:
    out = []
    for n in names:
        kids = [k for k in group_subtasks.get(n, []) if k != n]
        out += _leaves(kids, group_subtasks) if kids else [n]
    return out


def plan(output_types: Mapping[str, str], group_subtasks: Mapping[str, list[str]],
         lang_map: Mapping[str, str] | None = None, calibrate_on: Iterable[str] = (),
         doc_languages: Iterable[str] = ()) -> Plan:
    """The analysis of leaf tasks ({task: lm-eval output_type}) grouped as lm-eval's `group_subtasks` says.
    Tasks named in `calibrate_on` (or under a group named there) only fit temperatures. Errors (a language
    not found, two tasks of one language, a calibration task that is also scored or lacks a language) come
    from here, before scoring."""
    calibrate_on = list(calibrate_on)
    cal = set(_leaves(calibrate_on, group_subtasks))
    missing = sorted(cal - set(output_types))
    if missing:
        raise ValueError(f"--calibrate-on names {', '.join(map(repr, missing))}, which the run did not evaluate:"
                         f" evaluate the calibration tasks with the scored ones")
    skipped = {t: f"output_type {o}: only {MULTIPLE_CHOICE} tasks are analysed" for t, o in output_types.items()
               if o != MULTIPLE_CHOICE}
    mc = [t for t, o in output_types.items() if o == MULTIPLE_CHOICE]
    groups = {"group_subtasks": group_subtasks}
    # a task whose name gives no language but whose documents carry `lang` (govtune export's): split by document
    by_document = [t for t in mc if t in set(doc_languages) and t not in cal and task_language(t, lang_map) is None]
    scored = suites([t for t in mc if t not in cal and t not in by_document], groups, lang_map)
    calibration: dict[str, str] = {}
    for by_lang in suites([t for t in mc if t in cal], groups, lang_map).values():
        for lang, task in by_lang.items():
            if lang in calibration:
                raise ValueError(f"calibration tasks {calibration[lang]!r} and {task!r} are both {lang!r}: name "
                                 f"one calibration task per language")
            calibration[lang] = task
    if calibrate_on:
        lacking = sorted({lang for s in scored.values() for lang in s} - set(calibration))
        if lacking:
            raise ValueError(f"no calibration task for {', '.join(map(repr, lacking))}: temperature scaling needs "
                             f"a calibration split of every scored language (calibration: {sorted(calibration)})")
    return Plan(scored, calibration, skipped, by_document)


def calibration_tasks(run: LmEvalRun) -> list[str]:
    """The --calibrate-on tasks a run recorded (`config.calibrate_on` of its results): not scored suites."""
    return list(run.results.get("config", {}).get("calibrate_on") or [])


def plan_run(run: LmEvalRun, lang_map=None, calibrate_on: Iterable[str] = ()) -> Plan:
    types = {t: run.output_type(t) or "unknown" for t in run.samples}
    with_lang = [t for t, rows in run.samples.items() if rows and "lang" in (rows[0].get("doc") or {})]
    return plan(types, run.results.get("group_subtasks", {}), lang_map, calibrate_on, with_lang)


def _first_doc_has_lang(task) -> bool:
    try:
        return "lang" in task.eval_docs[0]
    except (IndexError, KeyError, TypeError):
        return False


def plan_tasks(loaded: Mapping, lang_map=None, calibrate_on: Iterable[str] = ()) -> Plan:
    """The plan of lm-eval's loaded tasks (`TaskManager.load(names)`: flat `tasks` and `group_map`), before
    the model runs."""
    types = {name: task.OUTPUT_TYPE for name, task in loaded["tasks"].items()}
    with_lang = [name for name, task in loaded["tasks"].items() if _first_doc_has_lang(task)]
    return plan(types, {g: list(kids) for g, kids in loaded.get("group_map", {}).items()}, lang_map, calibrate_on,
                with_lang)


# --- one suite ------------------------------------------------------------------------------------------
def softmax(lls: np.ndarray) -> np.ndarray:
    z = lls - lls.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def brier(probs: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per document: sum over classes of (p - onehot)^2, times 100 (govtune's classification tasks' scale)."""
    onehot = np.eye(probs.shape[1])[gold]
    return 100.0 * ((probs - onehot) ** 2).sum(axis=1)


def _replicates(units: Mapping[str, bootstrap.XnliUnit], idx) -> bootstrap.Replicates:
    """govtune's classification replicates (accuracy, ECE, Macro, max - min, Avg-ECE) plus Brier."""
    reps = bootstrap.classification_replicates(units, idx)
    for lang, u in units.items():
        reps[f"languages.{lang}.brier"] = brier(u.probs, u.gold)[idx[lang]].mean(axis=1)
    reps["avg_brier"] = np.mean([reps[f"languages.{lang}.brier"] for lang in units], axis=0)
    if len(units) > MAX_RANGE_LANGUAGES:
        reps["decile_gap"] = decile_gap(np.stack([reps[f"languages.{lang}.accuracy"] for lang in units]))
    return reps


def units(scores: Mapping[str, ChoiceScores]) -> dict[str, bootstrap.XnliUnit]:
    return {lang: bootstrap.XnliUnit(ids=s.doc_ids, probs=softmax(s.lls), gold=s.gold) for lang, s in scores.items()}


def point_and_replicates(scores: Mapping[str, ChoiceScores]):
    u = units(scores)
    return u, _replicates(u, bootstrap.identity(u)), _replicates(u, bootstrap.resamples(u))


def _interval(key: str, point, reps) -> list[float]:
    if key == "decile_gap":  # resampling inflates it as it does ECE: the centred interval holds the estimate
        return list(bootstrap.centred_interval(reps[key], float(point[key][0]), floor=0.0))
    # the registry knows the classification keys; the decile gap is this analysis's own
    return list(bootstrap.metric_interval(KIND, key, point, {k: v for k, v in reps.items() if k != "decile_gap"}))


def _check_disjoint(lang: str, scored: ChoiceScores, cal: ChoiceScores) -> None:
    shared = set(scored.doc_hashes) & set(cal.doc_hashes) - {""}
    if scored.task == cal.task or shared:
        raise ValueError(f"the calibration task {cal.task!r} shares {len(shared) or len(cal.doc_ids)} document(s)"
                         f" with the scored {scored.task!r} ({lang}): fit temperatures on a split disjoint from "
                         f"the scored documents (e.g. govtune-xnli-val for govtune-xnli)")


def analyse_suite(scores: Mapping[str, ChoiceScores], calibration: Mapping[str, ChoiceScores] | None = None
                  ) -> dict:
    """{languages: {lang: {task, n, accuracy, ece, brier[, temperature, ece_ts, n_calibration]}}, macro,
    parity_gap[, decile_gap], avg_ece, avg_brier[, avg_ece_ts], ci95: {key: [low, high]}}, percent."""
    u, point, reps = point_and_replicates(scores)
    out: dict = {"languages": {}}
    for lang, s in scores.items():
        out["languages"][lang] = {"task": s.task, "n": len(s.doc_ids),
                                  **{m: float(point[f"languages.{lang}.{m}"][0]) for m in ("accuracy", "ece", "brier")}}
    for key in ("macro", "parity_gap", "decile_gap", "avg_ece", "avg_brier"):
        if key in point:
            out[key] = float(point[key][0])
    out["parity"] = "best - worst decile" if "decile_gap" in point else "max - min"
    if calibration is not None:
        for lang, s in scores.items():
            _check_disjoint(lang, s, calibration[lang])
        cal = {lang: calibration[lang] for lang in scores}
        ts = TemperatureScaling.fit({lang: softmax(c.lls) for lang, c in cal.items()},
                                    {lang: c.gold for lang, c in cal.items()})
        for lang, row in out["languages"].items():
            scaled = ts.apply(lang, u[lang].probs)
            row.update(temperature=ts.temperatures[lang], n_calibration=ts.n[lang], calibration_task=cal[lang].task,
                       ece_ts=expected_calibration_error(scaled, u[lang].gold))
        out["avg_ece_ts"] = float(np.mean([row["ece_ts"] for row in out["languages"].values()]))
    out["ci95"] = {k: _interval(k, point, reps) for k in reps}
    return out


def suite_scores(run: LmEvalRun, p: Plan, skipped: dict[str, str] | None = None
                 ) -> dict[str, dict[str, ChoiceScores]]:
    """{suite: {language: ChoiceScores}} of a plan; a task it cannot read goes to `skipped` (with why) when
    given, else raises."""
    out: dict[str, dict[str, ChoiceScores]] = {}
    for name, by_lang in p.suites.items():
        for lang, t in by_lang.items():
            try:
                out.setdefault(name, {})[lang] = choice_scores(t, run.samples[t])
            except ValueError as e:  # a task this analysis cannot read (choices varying per document, ...)
                if skipped is None:
                    raise
                skipped[t] = str(e)
    for t in p.by_document:
        scores = choice_scores(t, run.samples[t])
        langs = {int(r["doc_id"]): r["doc"]["lang"] for r in run.samples[t]}
        out[t] = {}
        for code in sorted({langs[i] for i in scores.doc_ids}):
            keep = np.array([langs[i] == code for i in scores.doc_ids])
            out[t][normalise(code)] = ChoiceScores(
                t, tuple(np.array(scores.doc_ids)[keep].tolist()), tuple(np.array(scores.doc_hashes)[keep].tolist()),
                scores.lls[keep], scores.gold[keep])
    return {name: by_lang for name, by_lang in out.items() if by_lang}


def analyse(run: LmEvalRun, lang_map: Mapping[str, str] | None = None, calibrate_on: Iterable[str] = ()) -> dict:
    """The per_language.json of a run: every suite's analysis, the tasks left out, and what was computed."""
    p = plan_run(run, lang_map, calibrate_on)
    cal = {lang: choice_scores(t, run.samples[t]) for lang, t in p.calibration.items()}
    out = {"scores": SCORES, "units": "percent", "ece_bins": 15, "n_resamples": bootstrap.N_RESAMPLES,
           "level": bootstrap.LEVEL, "suites": {}, "skipped": dict(p.skipped)}
    for name, scores in suite_scores(run, p, out["skipped"]).items():
        lacking = sorted(set(scores) - set(cal))
        if cal and lacking:
            raise ValueError(f"no calibration task for {', '.join(map(repr, lacking))} of {name!r}: temperature "
                             f"scaling needs a calibration split of every scored language")
        out["suites"][name] = analyse_suite(scores, cal or None)
    return out


# --- two runs ---------------------------------------------------------------------------------------------
def _check_same_docs(a: ChoiceScores, b: ChoiceScores) -> None:
    if a.doc_ids != b.doc_ids or a.doc_hashes != b.doc_hashes:
        only = len(set(zip(a.doc_ids, a.doc_hashes)) ^ set(zip(b.doc_ids, b.doc_hashes)))
        raise ValueError(f"the runs scored different documents of {a.task!r} ({only} (doc_id, doc_hash) pairs in "
                         f"one run only): a paired comparison needs the same task, documents and --limit in both")


def comparable(a: Mapping[str, Mapping[str, str]], b: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The suites two runs share (a calibration split run only by one is left out); refuses a shared suite
    made of other tasks, or none in common."""
    common = [s for s in a if s in b]
    for s in common:
        if dict(a[s]) != dict(b[s]):
            raise ValueError(f"suite {s!r} is {dict(a[s])} in one run and {dict(b[s])} in the other: compare runs "
                             f"of the same tasks")
    if not common:
        raise ValueError(f"the runs share no multiple-choice suite ({sorted(a)} vs {sorted(b)}): compare runs of "
                         f"the same tasks")
    return common


def compare(a: LmEvalRun, b: LmEvalRun, lang_map: Mapping[str, str] | None = None) -> dict:
    """a - b per suite and metric on the same documents (matched by task and doc_id, checked by doc_hash):
    {suites: {suite: {key: {estimate, low, high, significant}}}}, from the paired bootstrap (both runs on the
    same resamples)."""
    pa, pb = plan_run(a, lang_map, calibration_tasks(a)), plan_run(b, lang_map, calibration_tasks(b))
    common = comparable({**pa.suites, **{t: {"*": t} for t in pa.by_document}},
                        {**pb.suites, **{t: {"*": t} for t in pb.by_document}})
    sa, sb = suite_scores(a, pa), suite_scores(b, pb)
    out = {"scores": SCORES, "difference": "a - b", "a": str(a.dir), "b": str(b.dir), "suites": {},
           "not_compared": sorted(set(sa) ^ set(sb))}
    for name in common:
        if list(sa[name]) != list(sb[name]):
            raise ValueError(f"{name!r} has the languages {list(sa[name])} in one run and {list(sb[name])} in the "
                             f"other: a paired comparison needs the same documents in both")
        for lang in sa[name]:
            _check_same_docs(sa[name][lang], sb[name][lang])
        _, point_a, reps_a = point_and_replicates(sa[name])
        _, point_b, reps_b = point_and_replicates(sb[name])
        diffs = bootstrap.paired_differences(point_a, reps_a, point_b, reps_b, task=None)
        for key in diffs:  # ECE and the gaps by their registry method (centred), as a study's differences
            if key == "decile_gap" or bootstrap.registry.metric(KIND, key).method != bootstrap.registry.PERCENTILE:
                est = diffs[key].estimate
                lo, hi = bootstrap.centred_interval(reps_a[key] - reps_b[key], est)
                diffs[key] = bootstrap.Difference(est, lo, hi)
        out["suites"][name] = {k: {"estimate": d.estimate, "low": d.low, "high": d.high, "significant": d.significant}
                               for k, d in diffs.items()}
    return out


# --- output -----------------------------------------------------------------------------------------------
def _ci(value: float, ci: list[float] | None) -> str:
    return f"{value:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def markdown(analysis: Mapping, comparison: Mapping | None = None) -> str:
    """The report.md section: one table per suite, its combined numbers, and the paired differences."""
    lines = ["## govtune's analysis per language", "",
             f"Multiple-choice tasks only; {analysis['scores']}. Percent, with 95% bootstrap intervals over "
             f"documents ({analysis['n_resamples']} resamples; ECE: {analysis['ece_bins']} equal-width bins, top "
             f"label, L1)."]
    for name, s in analysis["suites"].items():
        ci, ts = s["ci95"], "avg_ece_ts" in s
        lines += ["", f"### `{name}` ({len(s['languages'])} languages)", "",
                  "| language | task | n | accuracy | ECE | Brier |" + (" T | ECE after |" if ts else ""),
                  "|---|---|---|---|---|---|" + ("---|---|" if ts else "")]
        for lang, r in s["languages"].items():
            lines.append(f"| {lang} | {r['task']} | {r['n']} | "
                         f"{_ci(r['accuracy'], ci.get(f'languages.{lang}.accuracy'))}"
                         f" | {_ci(r['ece'], ci.get(f'languages.{lang}.ece'))} | "
                         f"{_ci(r['brier'], ci.get(f'languages.{lang}.brier'))} |"
                         + (f" {r['temperature']:.2f} | {r['ece_ts']:.1f} |" if ts else ""))
        gap = (f"parity gap (max − min) {_ci(s['parity_gap'], ci.get('parity_gap'))}"
               + (f", best − worst decile {_ci(s['decile_gap'], ci.get('decile_gap'))}" if "decile_gap" in s else ""))
        lines += ["", f"Macro {_ci(s['macro'], ci.get('macro'))}; {gap}; Avg-ECE {_ci(s['avg_ece'], ci.get('avg_ece'))}"
                  f"; Avg-Brier {_ci(s['avg_brier'], ci.get('avg_brier'))}"
                  + (f"; Avg-ECE after temperature scaling {s['avg_ece_ts']:.1f} (T fit by NLL on "
                     f"{', '.join(r['calibration_task'] for r in s['languages'].values())})" if ts else "") + "."]
    if analysis.get("skipped"):
        lines += ["", "Not analysed: " + "; ".join(f"`{t}` ({why})" for t, why in analysis["skipped"].items()) + "."]
    if comparison:
        lines += ["", f"### Paired differences: this run − `{comparison['b']}`", "",
                  "Same documents in both runs (matched by task and doc_id); paired bootstrap, both runs on the "
                  "same resamples; * marks an interval that excludes 0.", "",
                  "| suite | metric | difference | 95% interval |", "|---|---|---|---|"]
        for name, diffs in comparison["suites"].items():
            for key, d in diffs.items():
                lines.append(f"| {name} | {key} | {d['estimate']:+.1f}{' *' if d['significant'] else ''} | "
                             f"[{d['low']:+.1f}, {d['high']:+.1f}] |")
    return "\n".join(lines) + "\n"


def run_metrics(analysis: Mapping) -> tuple[dict, dict[str, list[float]]]:
    """A study run's part: (metrics["lm_eval"]["per_language"], its ci95 as flat keys
    `per_language.<suite>.<key>`, as results.sqlite stores a task's intervals)."""
    metrics = {name: {k: v for k, v in s.items() if k != "ci95"} for name, s in analysis["suites"].items()}
    ci95 = {f"per_language.{name}.{k}": v for name, s in analysis["suites"].items() for k, v in s["ci95"].items()}
    return metrics, ci95
