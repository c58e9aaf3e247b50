"""govtune's per-language analysis of lm-eval multiple-choice tasks, from lm-eval's samples files: accuracy is
lm-eval's acc; ECE, Brier, parity and their intervals are what a hand computation from the samples gives;
temperatures come from the calibration split only; two runs compare on the same documents only."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("lm_eval")

from govtune.adapters import AdapterConfig, adapter_layers, inject, save_adapter  # noqa: E402
from govtune.cli import main  # noqa: E402
from govtune.evaluation import bootstrap  # noqa: E402
from govtune.evaluation.calibration import fit_temperature  # noqa: E402
from govtune.evaluation.lm_eval_analysis import analyse, analyse_suite, compare  # noqa: E402
from govtune.evaluation.lm_eval_harness import check_languages, task_manager  # noqa: E402
from govtune.evaluation.lm_eval_samples import ChoiceScores, read_run, task_language  # noqa: E402
from govtune.models import tiny_model  # noqa: E402

LIMIT = 5
LANGS = ("en", "zh", "hi")
SUITE = "govtune-xnli"


def _lm_eval(out, *argv):
    assert main(["lm-eval", "--tasks", "govtune-xnli", "--limit", str(LIMIT), "--batch-size", "6", "--out", str(out),
                 *argv]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run a: the tiny model, temperatures from govtune-xnli-val. Run b: with a LoRA adapter moved away from
    its zero init, compared to a."""
    tmp = tmp_path_factory.mktemp("analysis")
    _lm_eval(tmp / "a", "--model", "tiny-llama", "--calibrate-on", "govtune-xnli-val")
    model, _ = tiny_model("tiny-llama")
    inject(model, AdapterConfig(method="lora", r=4, alpha=8))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name, p in layer.named_parameters():
                if not name.startswith("base_layer."):
                    p.add_(0.5 * torch.randn(p.shape, generator=g))
    save_adapter(model, tmp / "adapter")
    _lm_eval(tmp / "b", "--model", "tiny-llama", "--adapter", str(tmp / "adapter"), "--compare-to", str(tmp / "a"))
    return tmp


def _file_samples(d, task):
    """A task's samples read straight from its JSONL file: (doc_ids, (N, 3) log-likelihoods, gold)."""
    [path] = d.glob(f"samples_{task}_2*.jsonl")
    rows = sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["doc_id"])
    lls = np.array([[float(r[0]) for r in s["filtered_resps"]] for s in rows])
    return [s["doc_id"] for s in rows], lls, np.array([s["doc"]["gold"] for s in rows])


def _probs(lls, t=1.0):
    z = np.exp((lls - lls.max(axis=1, keepdims=True)) / t)
    return z / z.sum(axis=1, keepdims=True)


def _ece(probs, gold):
    """Top-label ECE, 15 equal-width bins, L1, percent: a loop over the bins."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == gold
    total = 0.0
    for k in range(15):
        lo, hi = k / 15, (k + 1) / 15
        inside = (conf >= lo) & ((conf < hi) if k < 14 else (conf <= 1.0))
        if inside.any():
            total += inside.sum() * abs(conf[inside].mean() - correct[inside].mean())
    return 100.0 * total / len(gold)


def test_samples_files_and_accuracy_are_lm_evals(runs):
    results = json.loads((runs / "a" / "results.json").read_text())
    analysis = json.loads((runs / "a" / "per_language.json").read_text())
    suite = analysis["suites"][SUITE]
    assert set(suite["languages"]) == set(LANGS) and set(analysis["suites"]) == {SUITE}
    for lang in LANGS:
        task = f"govtune-xnli-{lang}"
        # lm-eval's --log_samples format: one line per document, lm-eval's keys, arguments and target as it writes
        name = results["config"]["samples"][task]
        assert name.startswith(f"samples_{task}_") and name.endswith(".jsonl")
        first = json.loads((runs / "a" / name).read_text().splitlines()[0])
        assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "doc_hash", "acc",
                "acc_norm"} <= set(first) and set(first["arguments"]) == {"gen_args_0", "gen_args_1", "gen_args_2"}
        assert isinstance(first["target"], str)
        assert suite["languages"][lang]["accuracy"] == pytest.approx(100 * results["results"][task]["acc,none"],
                                                                     abs=1e-9)
        assert suite["languages"][lang]["n"] == LIMIT
    assert suite["macro"] == pytest.approx(100 * results["results"][SUITE]["acc,none"], abs=1e-9)
    report = (runs / "a" / "report.md").read_text()
    assert "## govtune's analysis per language" in report and "softmax over the choices" in report


def test_ece_brier_parity_and_intervals_equal_a_hand_computation(runs):
    suite = json.loads((runs / "a" / "per_language.json").read_text())["suites"][SUITE]
    ci = suite["ci95"]
    acc_reps, accs = {}, {}
    for lang in LANGS:
        _, lls, gold = _file_samples(runs / "a", f"govtune-xnli-{lang}")
        p = _probs(lls)
        row = suite["languages"][lang]
        correct = (p.argmax(axis=1) == gold).astype(float)
        accs[lang] = 100 * correct.mean()
        assert row["ece"] == pytest.approx(_ece(p, gold), abs=1e-9)
        brier = 100 * ((p - np.eye(3)[gold]) ** 2).sum(axis=1)
        assert row["brier"] == pytest.approx(brier.mean(), abs=1e-9)
        idx = bootstrap.unit_indices(lang, len(gold))  # the resamples every govtune run of these rows shares
        acc_reps[lang] = 100 * correct[idx].mean(axis=1)
        assert ci[f"languages.{lang}.accuracy"] == pytest.approx(np.percentile(acc_reps[lang], [2.5, 97.5]))
        assert ci[f"languages.{lang}.brier"] == pytest.approx(np.percentile(brier[idx].mean(axis=1), [2.5, 97.5]))
        e = np.array([_ece(p[i], gold[i]) for i in idx])
        q_lo, q_hi = np.percentile(e, [2.5, 97.5])
        med = np.median(e)
        centred = [max(row["ece"] - (med - q_lo), 0), row["ece"] + q_hi - med]
        assert ci[f"languages.{lang}.ece"] == pytest.approx(centred)
    assert suite["macro"] == pytest.approx(np.mean(list(accs.values())))
    assert suite["parity_gap"] == pytest.approx(max(accs.values()) - min(accs.values()))
    assert suite["parity"] == "max - min" and "decile_gap" not in suite
    assert ci["macro"] == pytest.approx(np.percentile(np.mean(list(acc_reps.values()), axis=0), [2.5, 97.5]))
    # max - min: simultaneous (Bonferroni over the 3 pairs) percentile intervals of the pairwise differences
    low = high = 0.0
    for i, a in enumerate(LANGS):
        for b in LANGS[i + 1:]:
            lo, hi = np.percentile(acc_reps[a] - acc_reps[b], [100 * 0.05 / 6, 100 * (1 - 0.05 / 6)])
            low, high = max(low, lo, -hi), max(high, hi, -lo)
    assert ci["parity_gap"] == pytest.approx([low, high])
    for key, (lo, hi) in ci.items():  # every interval contains its estimate
        value = suite[key] if "." not in key else suite["languages"][key.split(".")[1]][key.split(".")[2]]
        assert lo - 1e-9 <= value <= hi + 1e-9, key


def test_temperatures_come_from_the_validation_split_only(runs):
    suite = json.loads((runs / "a" / "per_language.json").read_text())["suites"][SUITE]
    changed = 0
    for lang in LANGS:
        row = suite["languages"][lang]
        _, val_lls, val_gold = _file_samples(runs / "a", f"govtune-xnli-val-{lang}")
        t = fit_temperature(val_lls, val_gold)
        assert row["temperature"] == pytest.approx(t, rel=1e-6)
        assert row["calibration_task"] == f"govtune-xnli-val-{lang}" and row["n_calibration"] == LIMIT
        _, lls, gold = _file_samples(runs / "a", f"govtune-xnli-{lang}")
        assert row["ece_ts"] == pytest.approx(_ece(_probs(lls, t), gold), abs=1e-6)
        changed += abs(row["ece_ts"] - row["ece"]) > 1e-6
    assert changed  # scaling moved ECE
    assert suite["avg_ece_ts"] == pytest.approx(np.mean([suite["languages"][g]["ece_ts"] for g in LANGS]))

    # the scored documents never reach the fit: other scores on them leave every temperature as it was
    run = read_run(runs / "a")
    rng = np.random.default_rng(0)

    def rescored(s):  # random log-likelihoods, and no per-document acc that would contradict them
        return {**{k: v for k, v in s.items() if k != "acc"},
                "filtered_resps": [[str(v), "False"] for v in rng.normal(-30, 5, 3)]}
    samples = {t: [rescored(s) for s in rows] if t.startswith("govtune-xnli-") and "-val-" not in t else rows
               for t, rows in run.samples.items()}
    other = analyse(replace(run, samples=samples), calibrate_on=["govtune-xnli-val"])["suites"][SUITE]
    assert [other["languages"][g]["accuracy"] for g in LANGS] != [suite["languages"][g]["accuracy"] for g in LANGS]
    assert {g: other["languages"][g]["temperature"] for g in LANGS} == {g: suite["languages"][g]["temperature"]
                                                                        for g in LANGS}
    # a calibration split that holds a scored document is refused
    leaked = dict(run.samples, **{"govtune-xnli-val-en": run.samples["govtune-xnli-en"]})
    with pytest.raises(ValueError, match="shares 5 document"):
        analyse(replace(run, samples=leaked), calibrate_on=["govtune-xnli-val"])


def test_paired_comparison_of_two_models_on_the_same_documents(runs):
    a = json.loads((runs / "a" / "per_language.json").read_text())["suites"][SUITE]
    b = json.loads((runs / "b" / "per_language.json").read_text())["suites"][SUITE]
    diff = json.loads((runs / "b" / "comparison.json").read_text())["suites"][SUITE]
    for lang in LANGS:
        for m in ("accuracy", "ece"):
            d = diff[f"languages.{lang}.{m}"]
            assert d["estimate"] == pytest.approx(b["languages"][lang][m] - a["languages"][lang][m], abs=1e-9)
            assert d["low"] - 1e-9 <= d["estimate"] <= d["high"] + 1e-9
    assert any(b["languages"][g]["ece"] != a["languages"][g]["ece"] for g in LANGS)  # the adapter is applied
    # Macro: both runs on the same resamples, the percentile interval of the replicated difference
    reps = []
    for d in (runs / "b", runs / "a"):
        per = []
        for lang in LANGS:
            _, lls, gold = _file_samples(d, f"govtune-xnli-{lang}")
            per.append(100 * (lls.argmax(axis=1) == gold)[bootstrap.unit_indices(lang, len(gold))].mean(axis=1))
        reps.append(np.mean(per, axis=0))
    assert [diff["macro"]["low"], diff["macro"]["high"]] == pytest.approx(np.percentile(reps[0] - reps[1], [2.5, 97.5]))
    assert "### Paired differences" in (runs / "b" / "report.md").read_text()

    run_a, run_b = read_run(runs / "a"), read_run(runs / "b")
    other_doc = [dict(s, doc_hash="0" * 64) if s["doc_id"] == 0 else s for s in run_b.samples["govtune-xnli-en"]]
    with pytest.raises(ValueError, match="different documents of 'govtune-xnli-en'"):
        compare(run_a, replace(run_b, samples=dict(run_b.samples, **{"govtune-xnli-en": other_doc})))
    fewer = run_b.samples["govtune-xnli-zh"][:-1]
    with pytest.raises(ValueError, match="different documents of 'govtune-xnli-zh'"):
        compare(run_a, replace(run_b, samples=dict(run_b.samples, **{"govtune-xnli-zh": fewer})))


def test_a_task_without_a_language_is_refused_before_the_model_runs(tmp_path, capsys):
    extra = tmp_path / "mine"
    extra.mkdir()
    task_manager(["govtune-xnli"], tmp_path / "gen")
    en = (tmp_path / "gen" / "govtune-xnli-en.yaml").read_text()
    (extra / "mine.yaml").write_text(en.replace("task: govtune-xnli-en", "task: my-nli"))
    code = main(["lm-eval", "--model", "tiny-llama", "--tasks", "my-nli", "--include-path", str(extra), "--limit", "2",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "no language found in the task name 'my-nli'" in err and "--lang-map" in err
    assert not (tmp_path / "out" / "results.json").exists()
    manager = task_manager(["my-nli"], tmp_path / "gen", [extra])
    check_languages(["my-nli"], manager, {"my-nli": "hi"})  # the mapping names it: no error


def test_task_names_give_their_language():
    assert task_language("xnli_sw") == ("sw", "xnli")
    assert task_language("belebele_swh_Latn") == ("sw", "belebele")
    assert task_language("govtune-xnli-en") == ("en", "govtune-xnli")
    assert task_language("govtune-xnli-val-zh") == ("zh", "govtune-xnli-val")
    assert task_language("sib200_hin_Deva") == ("hi", "sib200")
    assert task_language("arc_easy") is None and task_language("hellaswag") is None
    assert task_language("arc_easy", {"arc_easy": "eng_Latn"})[0] == "en"


def _fake(lang: str, acc: float, n: int = 40) -> ChoiceScores:
    """n documents of 3 choices, the first round(acc * n) answered right, confidence varying."""
    rng = np.random.default_rng(len(lang) + int(100 * acc))
    gold = rng.integers(0, 3, n)
    lls = rng.normal(0, 1, (n, 3))
    right = np.arange(n) < round(acc * n)
    lls[np.arange(n), gold] = np.where(right, lls.max(axis=1) + 1, lls.min(axis=1) - 1)
    return ChoiceScores(f"t-{lang}", tuple(range(n)), tuple(f"{lang}{i}" for i in range(n)), lls, gold)


@pytest.mark.parametrize("n_langs,k", [(7, 1), (12, 2)])
def test_parity_over_many_languages_is_the_decile_gap(n_langs, k):
    accs = np.linspace(0.2, 0.9, n_langs)
    scores = {f"l{i:02d}": _fake(f"l{i:02d}", a) for i, a in enumerate(accs)}
    out = analyse_suite(scores)
    per = sorted(out["languages"][lang]["accuracy"] for lang in scores)
    assert out["parity"] == "best - worst decile"
    assert out["decile_gap"] == pytest.approx(np.mean(per[-k:]) - np.mean(per[:k]))
    assert out["parity_gap"] == pytest.approx(per[-1] - per[0])
    lo, hi = out["ci95"]["decile_gap"]
    assert 0 <= lo <= out["decile_gap"] <= hi


def test_a_runs_per_language_keys_are_registered():
    from govtune.evaluation import metric_registry as registry
    from govtune.evaluation.lm_eval_analysis import run_metrics

    analysis = {"suites": {"govtune-xnli": analyse_suite({g: _fake(g, a) for g, a in (("en", 0.7), ("hi", 0.4))})}}
    metrics, ci95 = run_metrics(analysis)
    flat = {}

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, (int, float)):
                flat[f"{prefix}{k}"] = v
    walk(metrics, "per_language.")
    assert set(ci95) <= set(flat) and "per_language.govtune-xnli.macro" in ci95
    for key in flat:
        registry.metric("lm_eval", key)  # every stored key has its entry
    assert registry.name("lm_eval", "per_language.govtune-xnli.languages.hi.ece") == "govtune-xnli HI ECE"


def _sample(doc_id, lls, target, choices, delim=" "):
    """One line of a samples file as lm-eval writes it (arguments per choice, stringified responses)."""
    pred = int(np.argmax(lls))
    gold = choices.index(target) if isinstance(target, str) else target
    return {"doc_id": doc_id, "doc": {"i": doc_id}, "target": str(target), "filter": "none",
            "arguments": {f"gen_args_{i}": {"arg_0": "ctx", "arg_1": delim + c} for i, c in enumerate(choices)},
            "filtered_resps": [[str(v), "False"] for v in lls], "doc_hash": f"h{doc_id}", "acc": float(pred == gold)}


def test_gold_as_index_or_choice_text_and_unreadable_tasks_are_skipped(tmp_path):
    from govtune.evaluation.lm_eval_samples import LmEvalRun

    rng = np.random.default_rng(1)
    yes_no = ["yes", "no", "maybe"]
    samples = {
        "toy_en": [_sample(i, rng.normal(size=3), int(i % 3), yes_no) for i in range(6)],
        "toy_fr": [_sample(i, rng.normal(size=3), yes_no[i % 3], yes_no) for i in range(6)],  # target = choice text
        "toy_de": [_sample(i, rng.normal(size=2 + i % 2), 0, yes_no[:2 + i % 2]) for i in range(6)],
        "toy_gen": [{"doc_id": 0, "filtered_resps": ["text"], "target": "x"}],
    }
    results = {"configs": {t: {"output_type": "generate_until" if t == "toy_gen" else "multiple_choice"}
                           for t in samples}}
    out = analyse(LmEvalRun(tmp_path, results, samples))
    toy = out["suites"]["toy"]
    assert set(toy["languages"]) == {"en", "fr"} and set(out["skipped"]) == {"toy_de", "toy_gen"}
    assert "choices" in out["skipped"]["toy_de"] and "generate_until" in out["skipped"]["toy_gen"]
    for lang, task in (("en", "toy_en"), ("fr", "toy_fr")):
        assert toy["languages"][lang]["accuracy"] == pytest.approx(100 * np.mean([s["acc"] for s in samples[task]]))


def test_a_task_with_languages_per_document_splits_by_them(tmp_path):
    """govtune export's tasks: one lm-eval task, each document's `lang` names its language."""
    from govtune.evaluation.lm_eval_samples import LmEvalRun

    rng = np.random.default_rng(2)
    labels = ["a", "b", "c"]

    def run(shift):
        rows = [dict(_sample(i, rng.normal(size=3) + shift, i % 3, labels), doc={"lang": "hi" if i % 2 else "en"})
                for i in range(10)]
        return LmEvalRun(tmp_path, {"configs": {"govtune-intents": {"output_type": "multiple_choice"}}},
                         {"govtune-intents": rows})
    a, b = run(0.0), run(0.5)
    suite = analyse(a)["suites"]["govtune-intents"]
    rows = a.samples["govtune-intents"]
    for lang, odd in (("en", 0), ("hi", 1)):
        assert suite["languages"][lang]["n"] == 5
        assert suite["languages"][lang]["accuracy"] == pytest.approx(
            100 * np.mean([r["acc"] for r in rows if r["doc_id"] % 2 == odd]))
    diff = compare(b, a)["suites"]["govtune-intents"]
    assert diff["languages.en.accuracy"]["estimate"] == pytest.approx(
        analyse(b)["suites"]["govtune-intents"]["languages"]["en"]["accuracy"] - suite["languages"]["en"]["accuracy"])
