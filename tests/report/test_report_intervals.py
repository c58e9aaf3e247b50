"""The report's intervals and paired differences, from a hand-made store with per-example predictions; the
report needs that store alone."""

import json
import shutil
import sqlite3

import numpy as np
import pytest

from govtune.data.xnli import LABELS
from govtune.evaluation import bootstrap as bs
from govtune.evaluation.metrics import accuracy, corpus_bleu, corpus_chrf, expected_calibration_error, macro, parity_gap
from govtune.report.document import write_report
from govtune.results.store import (flatten, load_predictions, load_runs, load_scaled_predictions, record_curation,
                                      record_run, record_study, write_results_json)

LANGS = ("en", "zh", "hi")
N = 60
WORDS = "the cat sat on a mat while one dog and two birds watched from the old red house".split()


def _xnli(p_correct, seed):
    """Gold labels fixed by the example (the same test rows in every run), predictions by the run; every
    fourth example has a perturbed copy predicting the next label."""
    rng = np.random.default_rng(seed)
    recs = []
    for lang in LANGS:
        for i in range(N):
            gold = i % 3
            pred = gold if rng.random() < p_correct else (gold + 1) % 3
            probs = np.full(3, 0.15)
            probs[pred] = 0.7
            recs.append({"language": lang, "index": i, "id": f"{lang}-{i}", "perturbation": None,
                         "probs": dict(zip(LABELS, probs.tolist())), "prediction": LABELS[pred],
                         "gold": LABELS[gold], "correct": pred == gold})
            if i % 4 == 0:
                recs.append(dict(recs[-1], perturbation="whitespace", prediction=LABELS[(pred + 1) % 3]))
    acc, ece, drop = {}, {}, {}
    for lang in LANGS:
        rows = [r for r in recs if r["language"] == lang and r["perturbation"] is None]
        pert = {r["id"]: r["prediction"] for r in recs if r["language"] == lang and r["perturbation"]}
        gold = [LABELS.index(r["gold"]) for r in rows]
        acc[lang] = accuracy([LABELS.index(r["prediction"]) for r in rows], gold)
        ece[lang] = expected_calibration_error([[r["probs"][lab] for lab in LABELS] for r in rows], gold)
        drop[lang] = acc[lang] - accuracy([LABELS.index(pert.get(r["id"], r["prediction"])) for r in rows], gold)
    metrics = {"task": "xnli", "languages": {lang: {"accuracy": acc[lang], "ece": ece[lang], "n": N} for lang in LANGS},
               "macro": macro(acc), "parity_gap": parity_gap(acc), "avg_ece": macro(ece),
               "robustness": {"macro_drop": macro(drop), "by_language": {lang: {"drop": drop[lang]} for lang in LANGS}}}
    return metrics, recs


def _flores(good, seed):
    rng = np.random.default_rng(seed)
    refs_rng = np.random.default_rng(0)  # the same references in every run
    recs, pairs = [], {}
    for pair, tgt in (("en-zh", "zh"), ("en-es", "es")):
        rows = []
        for i in range(30):
            sep = " " if tgt == "es" else ""
            ref = sep.join(refs_rng.choice(WORDS if tgt == "es" else list("我们在学校里读书"), 8))
            toks = ref.split() if tgt == "es" else list(ref)
            hyp = ref if good and rng.random() < 0.9 else sep.join(rng.permutation(toks))
            rows.append({"pair": pair, "language": tgt, "index": 500 + i, "id": f"flores-{i}", "perturbation": None,
                         "source": "x", "hypothesis": hyp, "reference": ref})
        hy, rf = [r["hypothesis"] for r in rows], [r["reference"] for r in rows]
        pairs[pair] = {"bleu": corpus_bleu(hy, rf, tgt), "chrf": corpus_chrf(hy, rf), "n": 30}
        recs += rows
    bleu = {p: v["bleu"] for p, v in pairs.items()}
    return {"task": "flores", "pairs": pairs, "average_bleu": macro(bleu), "direction_gap": parity_gap(bleu),
            "average_chrf": macro({p: v["chrf"] for p, v in pairs.items()})}, recs


def _run(method, seed, p_correct, good_mt, shots=32):
    xm, xrec = _xnli(p_correct, seed)
    fm, frec = _flores(good_mt, seed)
    result = {"run_id": f"{method}-k{shots}-c2-s{seed}", "method": method, "seed": seed, "shots": shots,
              "curation": "c2" if shots else "none", "model": "tiny-llama", "metrics": {"xnli": xm, "flores": fm},
              "ci95": {"xnli": bs.task_intervals("xnli", xrec), "flores": bs.task_intervals("flores", frec)},
              "footprint": {"peak_memory_mb": 100.0, "step_time_s": 1.0 if shots else None,
                            "tunable_params_m": 0.1, "memory_kind": None, "train_steps": 4}, "lam_final": None}
    return result, {"xnli": xrec, "flores": frec}


@pytest.fixture
def study_dir(tmp_path):
    record_study(tmp_path, "t", "tiny-llama", "0" * 16, {"languages": list(LANGS), "flores_pairs": ["en-zh", "en-es"],
                                                         "epochs": 1})
    runs = [_run("base", 0, 0.0, False, shots=0)]
    runs += [_run("lora", s, 0.4, False) for s in (0, 1)] + [_run("hybrid", s, 0.95, True) for s in (0, 1)]
    for result, preds in runs:
        record_run(tmp_path, result, {}, preds)
    write_results_json(tmp_path, [r for r, _ in runs])
    return tmp_path, runs


def _group(runs, method, task):
    data = []
    for result, preds in runs:
        if result["method"] == method:
            to_units, replicate = bs.replicator(task, preds[task])
            units = to_units(preds[task])
            data.append((replicate(units, bs.identity(units)), replicate(units)))
    return bs.seed_mean([d[0] for d in data]), bs.seed_mean([d[1] for d in data])


def test_ci95_is_keyed_like_the_sqlite_metrics_and_round_trips(study_dir):
    out, runs = study_dir
    con = sqlite3.connect(out / "results.sqlite")
    names = {task: {m for (m,) in con.execute("SELECT metric FROM metrics WHERE task = ?", (task,))}
             for task in ("xnli", "flores")}
    headline = {"xnli": {"macro", "parity_gap", "avg_ece", "robustness.macro_drop",
                         *[f"robustness.by_language.{lang}.drop" for lang in LANGS],
                         *[f"languages.{lang}.{m}" for lang in LANGS for m in ("accuracy", "ece")]},
                "flores": {"average_bleu", "average_chrf", "direction_gap",
                           *[f"pairs.{p}.{m}" for p in ("en-zh", "en-es") for m in ("bleu", "chrf")]}}
    for e in json.loads((out / "results.json").read_text()):
        assert set(e["ci95"]) == headline[e["task"]] and set(e["ci95"]) <= names[e["task"]]
        assert set(flatten(e["metrics"])) == names[e["task"]]
    stored = {r["run_id"]: r["ci95"] for r in load_runs(out)}
    for result, preds in runs:
        for task in ("xnli", "flores"):
            want = {k: pytest.approx(tuple(v)) for k, v in result["ci95"][task].items()}
            assert stored[result["run_id"]][task] == want
            back = load_predictions(out, result["run_id"], task)
            assert len(back) == len(preds[task])
            assert [r["prediction"] for r in back if r["perturbation"]] == [
                r["prediction"] for r in preds[task] if r["perturbation"]]
            again = bs.task_intervals(task, back)  # the store alone gives the run's intervals back
            assert {k: pytest.approx(v) for k, v in result["ci95"][task].items()} == again


def test_report_shows_intervals_differences_and_significance(study_dir):
    out, runs = study_dir
    report = write_report(out).read_text()

    assert "| Base (no tuning) | 0.0 [0.0, 0.0] |" in report  # every base prediction is wrong
    hybrid_macro = [r["metrics"]["xnli"]["macro"] for r, _ in runs if r["method"] == "hybrid"]
    point, reps = _group(runs, "hybrid", "xnli")
    lo, hi = bs.percentile_interval(reps["macro"])
    mean, sd = np.mean(hybrid_macro), np.std(hybrid_macro, ddof=1)
    assert f"| {mean:.1f} ± {sd:.1f} [{lo:.1f}, {hi:.1f}] |" in report  # seed mean and its interval
    assert "95% bootstrap interval over the test examples" in report

    section = report.split("### Differences and significance")[1].split("\n### ")[0]
    pl, rl = _group(runs, "lora", "xnli")
    d = bs.paired_differences(point, reps, pl, rl)["macro"]
    assert d.significant
    row = next(line for line in section.splitlines() if line.startswith("| Hybrid − LoRA |"))
    assert f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}] *" in row
    verdict = next(line for line in section.splitlines() if line.startswith("- Hybrid − LoRA: "))
    assert f"XNLI Macro {d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}] (better)" in verdict
    ece = bs.paired_differences(point, reps, pl, rl, task="xnli")["avg_ece"]  # lower is better: a negative one improves
    assert ece.significant and f"XNLI Avg-ECE {ece.estimate:+.1f} [{ece.low:+.1f}, {ece.high:+.1f}] " \
        f"({'better' if ece.estimate < 0 else 'worse'})" in verdict
    assert "Significant differences" in section
    assert "| LoRA − Base (no tuning) |" in section and "| Hybrid − Base (no tuning) |" in section
    assert "LoRA − LoRA" not in section
    fp, fr = _group(runs, "hybrid", "flores")
    gp, gr = _group(runs, "lora", "flores")
    bleu = bs.paired_differences(fp, fr, gp, gr)["pairs.en-es.bleu"]
    assert bleu.significant and f"{bleu.estimate:+.1f} [{bleu.low:+.1f}, {bleu.high:+.1f}] *" in section
    # LoRA at 40% on 60 examples per language: its intervals cover chance; the hybrid's (95%) do not
    chance = next(line for line in section.splitlines() if line.startswith("XNLI at chance"))
    assert "LoRA (" in chance and "Hybrid" not in chance and "Base" not in chance


def test_report_says_when_nothing_is_significant(tmp_path):
    record_study(tmp_path, "t", "tiny-llama", "0" * 16, {"languages": list(LANGS)})
    runs = [_run("lora", 0, 0.5, False), _run("hybrid", 0, 0.5, False)]  # the same predictions
    for result, preds in runs:
        result["metrics"].pop("flores"), result["ci95"].pop("flores"), preds.pop("flores")
        record_run(tmp_path, result, {}, preds)
    section = write_report(tmp_path).read_text().split("### Differences and significance")[1]
    assert "No difference is significant" in section and "| Hybrid − LoRA | +0.0 [+0.0, +0.0] |" in section
    assert "*" not in section.split("####")[1].split("| Hybrid − LoRA |")[1].splitlines()[0]


def test_an_ablation_without_lora_compares_its_variants_with_its_first_method(tmp_path):
    record_study(tmp_path, "t", "tiny-llama", "0" * 16, {"languages": list(LANGS)})
    runs = [_run("hybrid", 0, 0.4, False), _run("hybrid_learned", 0, 0.95, False)]
    for result, preds in runs:
        result["metrics"].pop("flores"), result["ci95"].pop("flores"), preds.pop("flores")
        record_run(tmp_path, result, {}, preds)
    section = write_report(tmp_path).read_text().split("### Differences and significance")[1]
    row = next(line for line in section.splitlines() if line.startswith("| hybrid_learned − Hybrid |"))
    point, reps = _group(runs, "hybrid_learned", "xnli")
    point_b, reps_b = _group(runs, "hybrid", "xnli")
    macro_diff = bs.paired_differences(point, reps, point_b, reps_b)["macro"]
    assert macro_diff.significant and f"{macro_diff.estimate:+.1f}" in row and "*" in row
    assert "− LoRA" not in section


def test_a_store_of_an_older_schema_is_refused_with_the_fix(tmp_path):
    con = sqlite3.connect(tmp_path / "results.sqlite")
    con.execute("CREATE TABLE metrics (run_id TEXT, task TEXT, metric TEXT, value REAL)")
    con.commit()
    con.close()
    with pytest.raises(RuntimeError, match="older govtune .*metrics.*new --out"):
        load_runs(tmp_path)


def _scaled(preds, temperature=2.0):
    """XNLI records with `probs_ts`, as a calibrated run writes them: softmax(log p / T)."""
    for r in preds["xnli"]:
        p = {lab: v ** (1 / temperature) for lab, v in r["probs"].items()}
        r["probs_ts"] = {lab: v / sum(p.values()) for lab, v in p.items()}
    return preds


def test_scaled_probabilities_round_trip_for_the_reliability_diagrams(tmp_path):
    result, preds = _run("lora", 0, 0.5, False)
    record_run(tmp_path, result, {}, _scaled(preds))
    back = load_scaled_predictions(tmp_path, result["run_id"], "xnli")
    clean = [r for r in preds["xnli"] if r["perturbation"] is None]
    assert [(r["language"], r["id"], r["gold"], r["probs"], r["probs_ts"]) for r in back] == [
        (r["language"], r["id"], r["gold"], r["probs"], r["probs_ts"]) for r in clean]
    uncalibrated, preds = _run("hybrid", 0, 0.5, False)
    record_run(tmp_path, uncalibrated, {}, preds)
    assert not any("probs_ts" in r for r in load_scaled_predictions(tmp_path, uncalibrated["run_id"], "xnli"))


CURATION = {  # C0 keeps the pool; C2 drops two English records as too short
    "curations": [("c0", "c0", "", 6, 6, 0, "[]"), ("c2", "c2", "langid,dedup,quality,perplexity", 6, 4, 2, "[]")],
    "curation_counts": [(name, stage, lang, kind, "", n) for name, stage, lang, kind, n in (
        ("c0", "c0", "en", "input", 2), ("c0", "c0", "en", "kept", 2), ("c0", "c0", "zh", "input", 2),
        ("c0", "c0", "zh", "kept", 2), ("c0", "c0", "hi", "input", 2), ("c0", "c0", "hi", "kept", 2),
        ("c2", "c2", "en", "input", 2), ("c2", "c2", "en", "kept", 0), ("c2", "c2", "zh", "input", 2),
        ("c2", "c2", "zh", "kept", 2), ("c2", "c2", "hi", "input", 2), ("c2", "c2", "hi", "kept", 2))]
    + [("c2", "c2", "en", "dropped", "too_short", 2)]}


def test_the_report_needs_results_sqlite_alone(tmp_path):
    out, alone = tmp_path / "study", tmp_path / "alone"
    out.mkdir()
    record_study(out, "from the store", "tiny-llama", "0" * 16, {"languages": list(LANGS), "epochs": 1,
                                                                 "incontext_shots": 2})
    for method, p in (("icl", 0.3), ("lora", 0.4), ("hybrid", 0.9)):
        for stage in ("c0", "c2"):
            result, preds = _run(method, 0, p, False, shots=0 if method == "icl" else 32)
            result.update(run_id=f"{method}-{stage}", curation=stage)
            record_run(out, result, {"epoch/val_loss": [(0, 2.0), (1, 1.5)]}, _scaled(preds))
    record_curation(out, CURATION)
    # What the report once read beside the database: were it still read, the report would change.
    (out / "study.json").write_text(json.dumps({"name": "from study.json", "config": {"languages": ["en"]}}))
    (out / "curation").mkdir()
    (out / "curation" / "c2.jsonl").write_text('{"lang": "en"}\n' * 5)
    report = write_report(out).read_text()
    alone.mkdir()
    shutil.copy(out / "results.sqlite", alone)
    assert write_report(alone).read_text() == report
    assert report.startswith("# govtune report: from the store\n") and "| EN | ZH | HI |" in report
    assert "| LoRA | C2 | " in report and "| hi: 2, zh: 2 |" in report  # kept per language, from the store
    assert "2 examples per language (FLORES: per direction)" in report  # the in-context note, from the config
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert {"reliability_lora.png", "reliability_icl.png", "dynamics.png"} <= set(figures)
    assert sorted(p.name for p in (alone / "figures").iterdir()) == figures
