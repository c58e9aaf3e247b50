"""Every interval govtune reports contains its point estimate, for every bootstrapped registry metric: on
realistic synthetic predictions (a model at chance that spreads its probability over the labels, one a
little and one far above chance, well and badly calibrated, small and large test sets, with robustness),
in the case that broke the percentile interval (every language at the same accuracy: a parity gap of 0),
and on real predictions of the tiny Llama on the shipped XNLI and FLORES samples. The same for the seed
mean and the paired difference of two runs."""

import numpy as np
import pytest

from govtune.data.xnli import LABELS
from govtune.evaluation import bootstrap as bs
from govtune.evaluation import metric_registry as registry

LANGS = ("en", "zh", "hi")
EPS = 1e-9


def _xnli(n, skill, spread, seed, equal_accuracy=False, langs=LANGS):
    """Per language n examples; logits N(0, spread) with `skill` added to the gold label's (0: chance), and a
    perturbed copy of every third example whose prediction flips with probability 0.3."""
    rng = np.random.default_rng(seed)
    recs = []
    for lang in langs:
        for i in range(n):
            gold = int(rng.integers(3))
            logits = rng.normal(0.0, spread, 3)
            if equal_accuracy:  # exactly the first n // 3 correct in every language
                logits[gold] += 10.0 if i < n // 3 else -10.0
            else:
                logits[gold] += skill
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            pred = int(np.argmax(probs))
            recs.append({"language": lang, "id": f"{lang}-{i}", "perturbation": None, "gold": LABELS[gold],
                         "prediction": LABELS[pred], "probs": dict(zip(LABELS, probs.tolist()))})
            if i % 3 == 0:
                flipped = pred if rng.random() > 0.3 else int(rng.integers(3))
                recs.append(dict(recs[-1], perturbation="typo", prediction=LABELS[flipped], probs=None))
    return recs


SENTENCES = {"es": "el gato negro duerme en la casa grande cerca del río".split(),
             "zh": list("我们今天在学校里读书写字然后回家吃饭")}


def _flores(n, quality, seed):
    """Per direction n sentences; each reference word kept with probability `quality`, else replaced."""
    rng = np.random.default_rng(seed)
    recs = []
    for pair, tgt in (("en-es", "es"), ("en-zh", "zh")):
        words = SENTENCES[tgt]
        join = "" if tgt == "zh" else " "
        for i in range(n):
            ref = list(rng.choice(words, len(words)))
            hyp = [w if rng.random() < quality else str(rng.choice(words)) for w in ref[: int(rng.integers(4, 12))]]
            recs.append({"pair": pair, "language": tgt, "id": i, "hypothesis": join.join(hyp),
                         "reference": join.join(ref)})
    return recs


def _contains(task, recs, label):
    to_units, replicate = bs.replicator(task, recs)
    units = to_units(recs)
    point, reps = replicate(units, bs.identity(units)), replicate(units)
    ci = bs.task_intervals(task, recs)
    assert set(ci) == set(reps)
    for key, (lo, hi) in ci.items():
        assert lo - EPS <= point[key][0] <= hi + EPS, f"{label}: {key} {point[key][0]} not in [{lo}, {hi}]"
    return units, point, reps


def _covered(keys, task):
    return {registry.metric(task, k).key for k in keys}


XNLI_CASES = [(n, skill, spread, seed) for n, seed in ((10, 0), (40, 1), (40, 2), (120, 3)) for skill, spread in
              ((0.0, 0.05), (0.0, 1.0), (1.0, 1.0), (3.0, 0.5), (6.0, 2.0))]


def test_every_xnli_interval_contains_its_estimate():
    seen = set()
    for n, skill, spread, seed in XNLI_CASES:
        _, _, reps = _contains("xnli", _xnli(n, skill, spread, seed), f"n={n} skill={skill} spread={spread}")
        seen |= _covered(reps, "xnli")
    # over more than 5 languages the decile gap too (12 languages, a decile of 2), a gap of 0 among them
    many = tuple(f"l{i:02d}" for i in range(12))
    for n, skill, spread, seed in XNLI_CASES[::4]:
        _, _, reps = _contains("xnli", _xnli(n, skill, spread, seed, langs=many), f"12 languages n={n} skill={skill}")
        seen |= _covered(reps, "xnli")
    _contains("xnli", _xnli(30, 0.0, 1.0, 0, equal_accuracy=True, langs=many), "12 languages, equal accuracy")
    bootstrapped = {m.key for m in registry.METRICS if m.task == registry.CLASSIFICATION and m.interval == registry.BOOTSTRAP}
    assert seen == bootstrapped  # every bootstrapped XNLI metric was checked


def test_a_gap_of_zero_lies_in_its_interval():
    """The demo's case: every language at the same accuracy. The percentile interval of max - min lies
    wholly above 0 here; the pairwise one starts at 0."""
    recs = _xnli(40, 0.0, 1.0, 0, equal_accuracy=True)
    units, point, reps = _contains("xnli", recs, "equal accuracy")
    assert point["parity_gap"][0] == 0.0
    assert bs.percentile_interval(reps["parity_gap"])[0] > 0  # what the report printed before
    lo, hi = bs.task_intervals("xnli", recs)["parity_gap"]
    assert lo == 0.0 and hi > 10  # no pair differs significantly, and 40 examples cannot exclude a large gap


def test_every_flores_interval_contains_its_estimate():
    seen = set()
    for n, seed in ((8, 0), (32, 1)):
        for quality in (0.0, 0.3, 0.7, 0.95):
            _, _, reps = _contains("flores", _flores(n, quality, seed), f"n={n} quality={quality}")
            seen |= _covered(reps, "flores")
    bootstrapped = {m.key for m in registry.METRICS if m.task == registry.TRANSLATION and m.interval == registry.BOOTSTRAP}
    assert seen == bootstrapped


def test_seed_means_and_paired_differences_contain_their_estimates():
    for skill_a, skill_b in ((0.0, 0.0), (0.0, 1.5), (3.0, 1.0)):
        groups = []
        for skill, seeds in ((skill_a, (0, 1, 2)), (skill_b, (3, 4, 5))):
            runs = [bs.xnli_units(_xnli(40, skill, 1.0, s)) for s in seeds]
            # seeds of one method are evaluated on the same rows: same ids, other predictions
            points = [bs.xnli_replicates(u, bs.identity(u)) for u in runs]
            reps = [bs.xnli_replicates(u) for u in runs]
            groups.append((bs.seed_mean(points), bs.seed_mean(reps)))
        for point, reps in groups:
            for key in reps:
                lo, hi = bs.metric_interval("xnli", key, point, reps)
                assert lo - EPS <= point[key][0] <= hi + EPS, key
        (pa, ra), (pb, rb) = groups
        for key, d in bs.paired_differences(pa, ra, pb, rb, task="xnli").items():
            assert d.low - EPS <= d.estimate <= d.high + EPS, (skill_a, skill_b, key)


def test_real_predictions_of_the_tiny_model_on_the_shipped_data(tiny_llama):
    from govtune.evaluation import evaluate_flores, evaluate_xnli
    from govtune.data.flores import load_flores
    from govtune.data.xnli import load_xnli

    model, tok = tiny_llama
    # rows whose Hindi hypothesis fits the tiny model's 512-byte context (ByT5 tokens are bytes)
    xnli = {lang: load_xnli(lang, rows=range(1245, 1265)) for lang in LANGS}
    _, xpred = evaluate_xnli(model, tok, xnli, batch_size=16, robustness=True, progress=False)
    _contains("xnli", xpred, "tiny-llama XNLI")
    flores = {"en-zh": load_flores("en", "zh", lines=range(500, 508)),
              "en-es": load_flores("en", "es", lines=range(500, 508))}
    _, fpred = evaluate_flores(model, tok, flores, batch_size=8, max_new_tokens=12, progress=False)
    _contains("flores", fpred, "tiny-llama FLORES")
