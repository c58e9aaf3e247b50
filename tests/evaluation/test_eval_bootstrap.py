"""Bootstrap intervals against scipy and a hand computation; fast BLEU against sacreBLEU; paired differences."""

import numpy as np
import pytest
from scipy.stats import bootstrap as scipy_bootstrap

from govtune.data.xnli import LABELS
from govtune.evaluation import bootstrap as bs
from govtune.evaluation.metrics import (accuracy, corpus_bleu, corpus_chrf, expected_calibration_error, macro,
                                        parity_gap)

WORDS = "the cat sat on a mat while one dog and two birds watched from the old red house".split()


def _xnli_records(sizes, p_correct, seed=0):
    """XNLI records: per language, n examples correct with probability p_correct, and a perturbed copy of
    every other example with a random prediction (the others no operation changed)."""
    rng = np.random.default_rng(seed)
    recs = []
    for lang, n in sizes.items():
        for i in range(n):
            gold = int(rng.integers(3))
            pred = gold if rng.random() < p_correct else (gold + 1 + int(rng.integers(2))) % 3
            probs = rng.dirichlet([1, 1, 1])
            probs[[pred, int(np.argmax(probs))]] = probs[[int(np.argmax(probs)), pred]]  # pred is the argmax
            recs.append({"language": lang, "id": f"{lang}-{i}", "perturbation": None, "gold": LABELS[gold],
                         "prediction": LABELS[pred], "probs": dict(zip(LABELS, probs))})
            if i % 2:
                recs.append(dict(recs[-1], perturbation="punctuation", prediction=LABELS[int(rng.integers(3))],
                                 probs=None))
    return recs


def _flores_records(n, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for pair, tgt in (("en-es", "es"), ("en-zh", "zh")):
        for i in range(n):
            if tgt == "zh":
                ref = "".join(rng.choice(list("我们在学校里读书写字"), 8))
                hyp = ref[: int(rng.integers(2, 9))] + "".join(rng.choice(list("他们家"), 2))
            else:
                ref = " ".join(rng.choice(WORDS, 9))
                hyp = " ".join(rng.choice(ref.split(), 7)) if i % 3 else ref
            recs.append({"pair": pair, "language": tgt, "id": i, "hypothesis": hyp, "reference": ref})
    return recs


def test_indices_depend_only_on_unit_and_size_and_keep_each_unit_size():
    a = bs.resamples(bs.xnli_units(_xnli_records({"en": 30, "zh": 20}, 0.5)))
    b = bs.resamples(bs.xnli_units(_xnli_records({"hi": 10, "en": 30}, 0.9, seed=3)))
    assert a["en"].shape == (bs.N_RESAMPLES, 30) and a["zh"].shape == (bs.N_RESAMPLES, 20)
    assert np.array_equal(a["en"], b["en"])  # another run, other languages beside it: same resamples
    assert not np.array_equal(a["en"][:, :20], a["zh"])  # languages are resampled independently
    assert a["en"].min() == 0 and a["en"].max() == 29


def test_xnli_intervals_equal_a_hand_computation_with_the_metrics_module():
    recs = _xnli_records({"en": 40, "zh": 25, "hi": 31}, 0.6)
    clean = [r for r in recs if r["perturbation"] is None]
    reps = bs.xnli_replicates(bs.xnli_units(recs))
    idx = bs.resamples(bs.xnli_units(recs))
    perturbed = {(r["language"], r["id"]): r["prediction"] for r in recs if r["perturbation"]}
    expected = {k: [] for k in reps}
    for j in range(bs.N_RESAMPLES):
        acc, ece, drop = {}, {}, {}
        for lang in ("en", "zh", "hi"):
            rows = [r for r in clean if r["language"] == lang]
            sample = [rows[i] for i in idx[lang][j]]
            gold = [LABELS.index(r["gold"]) for r in sample]
            acc[lang] = accuracy([LABELS.index(r["prediction"]) for r in sample], gold)
            ece[lang] = expected_calibration_error([[r["probs"][lab] for lab in LABELS] for r in sample], gold)
            expected[f"languages.{lang}.accuracy"].append(acc[lang])
            expected[f"languages.{lang}.ece"].append(ece[lang])
            pert = [LABELS.index(perturbed.get((lang, r["id"]), r["prediction"])) for r in sample]
            drop[lang] = acc[lang] - accuracy(pert, gold)
            expected[f"robustness.by_language.{lang}.drop"].append(drop[lang])
        expected["macro"].append(macro(acc))
        expected["parity_gap"].append(parity_gap(acc))
        expected["avg_ece"].append(macro(ece))
        expected["robustness.macro_drop"].append(macro(drop))
    for key, values in expected.items():
        np.testing.assert_allclose(reps[key], values, rtol=0, atol=1e-9, err_msg=key)
    assert len(expected) == 13  # 3 languages x (accuracy, ECE, drop), Macro, gap, Avg-ECE, macro drop
    ci = bs.task_intervals("xnli", recs)
    assert set(ci) == set(expected)
    assert "robustness.macro_drop" not in bs.task_intervals("xnli", clean)  # robustness not evaluated
    point_ece = {lang: expected_calibration_error([[r["probs"][lab] for lab in LABELS] for r in clean
                                                   if r["language"] == lang],
                                                  [LABELS.index(r["gold"]) for r in clean if r["language"] == lang])
                 for lang in ("en", "zh", "hi")}
    point = {**{f"languages.{lang}.ece": e for lang, e in point_ece.items()}, "avg_ece": macro(point_ece)}
    for key, values in expected.items():
        lo, hi = np.percentile(values, [2.5, 97.5])
        if key in point:  # ECE, centred: the spread around the replicates' median, placed around the estimate
            med = np.median(values)
            lo, hi = max(0.0, point[key] - (med - lo)), point[key] + (hi - med)
        elif key == "parity_gap":  # the largest of the pairwise |differences|' Bonferroni bounds
            accs = [np.array(expected[f"languages.{lang}.accuracy"]) for lang in ("en", "zh", "hi")]
            bounds = [np.percentile(a - b, [100 * 0.05 / 6, 100 * (1 - 0.05 / 6)])
                      for i, a in enumerate(accs) for b in accs[i + 1:]]
            lo = max(0.0, *(max(b[0], -b[1]) for b in bounds))
            hi = max(max(b[1], -b[0]) for b in bounds)
        assert ci[key] == pytest.approx([lo, hi], abs=1e-9), key


def test_accuracy_and_ece_intervals_match_scipy_percentile_bootstrap():
    recs = _xnli_records({"en": 300}, 0.6, seed=5)
    unit = bs.xnli_units(recs)["en"]
    ci = bs.task_intervals("xnli", recs)
    correct = 100.0 * (unit.probs.argmax(1) == unit.gold)
    ref = scipy_bootstrap((correct,), np.mean, method="percentile", n_resamples=20000,
                          random_state=np.random.default_rng(1)).confidence_interval
    # 1,000 resamples: the Monte Carlo sd of a 2.5% quantile is ~0.25 points here, and accuracy moves in
    # steps of 1/3 point; 1 point is four sds.
    assert ci["languages.en.accuracy"] == pytest.approx([ref.low, ref.high], abs=1.0)
    ref = scipy_bootstrap((np.arange(300),), lambda i: expected_calibration_error(unit.probs[i], unit.gold[i]),
                          vectorized=False, method="percentile", n_resamples=5000,
                          random_state=np.random.default_rng(2)).confidence_interval
    assert ci["languages.en.ece"] == pytest.approx([ref.low, ref.high], abs=1.0)  # ECE's sd here: ~2.5 points


def test_fast_bleu_and_chrf_equal_sacrebleu_recomputed_on_the_same_resamples():
    recs = _flores_records(40)
    units = bs.flores_units(recs)
    reps = bs.flores_replicates(units)
    idx = bs.resamples(units)
    for pair, tgt in (("en-es", "es"), ("en-zh", "zh")):
        rows = [r for r in recs if r["pair"] == pair]
        point = bs.flores_replicates(units, bs.identity(units))
        assert point[f"pairs.{pair}.bleu"][0] == pytest.approx(
            corpus_bleu([r["hypothesis"] for r in rows], [r["reference"] for r in rows], tgt), abs=1e-9)
        for j in range(25):
            sample = [rows[i] for i in idx[pair][j]]
            hyps, refs = [r["hypothesis"] for r in sample], [r["reference"] for r in sample]
            assert reps[f"pairs.{pair}.bleu"][j] == pytest.approx(corpus_bleu(hyps, refs, tgt), abs=1e-9)
            assert reps[f"pairs.{pair}.chrf"][j] == pytest.approx(corpus_chrf(hyps, refs), abs=1e-9)
    assert np.allclose(reps["average_bleu"], (reps["pairs.en-es.bleu"] + reps["pairs.en-zh.bleu"]) / 2)
    assert np.allclose(reps["direction_gap"], abs(reps["pairs.en-es.bleu"] - reps["pairs.en-zh.bleu"]))
    lo, hi = bs.task_intervals("flores", recs)["pairs.en-es.bleu"]
    assert lo < point["pairs.en-es.bleu"][0] < hi and hi - lo > 1.0  # a real spread around the corpus BLEU


def _run(recs, task="xnli"):
    to_units, replicate = bs.replicator(task, recs)
    units = to_units(recs)
    return units, replicate(units, bs.identity(units)), replicate(units)


def test_paired_difference_of_a_run_with_itself_is_zero():
    for task, recs in (("xnli", _xnli_records({"en": 50, "zh": 40}, 0.5)), ("flores", _flores_records(20))):
        units, point, reps = _run(recs, task)
        diff = bs.paired_differences(point, reps, point, reps)
        assert set(diff) == set(reps)
        for d in diff.values():
            assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0) and not d.significant


def test_clearly_better_run_is_significant_and_one_flipped_example_is_not():
    sizes = {"en": 100, "zh": 100, "hi": 100}
    bad, good = _xnli_records(sizes, 0.35, seed=1), _xnli_records(sizes, 0.9, seed=1)
    ub, pb, rb = _run(bad)
    ug, pg, rg = _run(good)
    bs.check_same_rows(ub, ug)
    d = bs.paired_differences(pg, rg, pb, rb)["macro"]
    assert d.significant and d.low > 20 and d.estimate == pytest.approx(pg["macro"][0] - pb["macro"][0])
    assert bs.paired_differences(pb, rb, pg, rg)["macro"].high < -20  # the other way round: below 0
    flipped = [dict(r) for r in bad]
    first = next(r for r in flipped if r["perturbation"] is None and r["prediction"] != r["gold"])
    first["prediction"] = first["gold"]
    first["probs"] = {lab: 0.9 if lab == first["gold"] else 0.05 for lab in LABELS}
    _, pf, rf = _run(flipped)
    d = bs.paired_differences(pf, rf, pb, rb)["languages.en.accuracy"]
    assert d.estimate == pytest.approx(1.0) and d.low == 0.0 and not d.significant


def test_seed_mean_averages_each_resample_and_rejects_other_rows():
    runs = [_run(_xnli_records({"en": 30, "zh": 30}, p, seed=s)) for p, s in ((0.4, 0), (0.7, 1))]
    mean = bs.seed_mean([r[2] for r in runs])
    j = 17
    assert mean["macro"][j] == pytest.approx((runs[0][2]["macro"][j] + runs[1][2]["macro"][j]) / 2)
    same = bs.seed_mean([runs[0][2], runs[0][2]])
    assert bs.percentile_interval(same["avg_ece"]) == bs.percentile_interval(runs[0][2]["avg_ece"])
    other = _run(_xnli_records({"en": 31, "zh": 30}, 0.4))
    with pytest.raises(ValueError, match="different 'en' test rows"):
        bs.check_same_rows(runs[0][0], other[0])


def test_the_intervals_are_exactly_the_registry_s_bootstrapped_metrics():
    """Every metric the registry says has a bootstrap interval gets one, and no other: per language or
    direction its unit metrics, and the combinations of them."""
    from govtune.evaluation import metric_registry as registry

    def expected(task, units):
        keys = set()
        for m in registry.METRICS:
            if m.aggregation == registry.DECILE and len(units) <= 5:
                continue  # the decile gap: over more than 5 languages only
            if m.task in registry.kinds(task) and m.interval == registry.BOOTSTRAP:
                keys |= {m.key} if m.aggregation != registry.UNIT else {
                    m.key.replace("{lang}", u).replace("{pair}", u) for u in units}
        return keys

    assert set(bs.task_intervals("xnli", _xnli_records({"en": 6, "hi": 5}, 0.5))) == expected("xnli", ["en", "hi"])
    assert set(bs.task_intervals("flores", _flores_records(4))) == expected("flores", ["en-es", "en-zh"])


def test_decile_gap_equals_a_hand_computation_and_its_interval_contains_it():
    """12 languages at known accuracies (3 of 10 .. 12 of 12 right, ...): a decile is 2 languages (12 / 10,
    rounded up), so the gap is the mean of the two best minus the mean of the two worst, in the evaluator's
    metrics and in the bootstrap's point estimate; its interval, from the same resamples as every other
    metric, contains it. Up to 5 languages there is none (max - min says it)."""
    from govtune.evaluation.metrics import decile_gap

    rng = np.random.default_rng(3)
    langs = [f"l{i:02d}" for i in range(12)]
    right = dict(zip(langs, [3, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 10]))  # of 10 each
    recs = []
    for lang in langs:
        for i in range(10):
            gold = int(rng.integers(3))
            pred = gold if i < right[lang] else (gold + 1) % 3
            probs = np.full(3, 0.2)
            probs[pred] = 0.6
            recs.append({"language": lang, "id": f"{lang}-{i}", "perturbation": None, "gold": LABELS[gold],
                         "prediction": LABELS[pred], "probs": dict(zip(LABELS, probs.tolist()))})
    hand = (100 + 90) / 2 - (30 + 40) / 2  # 60 points
    assert decile_gap({lang: 10.0 * n for lang, n in right.items()}) == pytest.approx(hand)
    units = bs.xnli_units(recs)
    point = bs.classification_replicates(units, bs.identity(units))
    assert point["decile_gap"][0] == pytest.approx(hand)
    low, high = bs.classification_intervals(recs)["decile_gap"]
    assert low <= hand <= high and high - low > 1.0
    # every language at one accuracy: the replicated gap is inflated above 0, the interval still holds 0
    same = [dict(r, prediction=r["gold"], probs={**r["probs"]}) for r in recs]
    for r in same:
        r["probs"] = {lab: (0.6 if lab == r["gold"] else 0.2) for lab in LABELS}
    low, high = bs.classification_intervals(same)["decile_gap"]
    assert low <= 0.0 <= high
    few = [r for r in recs if r["language"] in langs[:5]]
    assert "decile_gap" not in bs.classification_intervals(few)
