"""Temperature scaling: T recovered on synthetic logits, ECE after scaling against torchmetrics, and
test rows never used for fitting."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from torchmetrics.classification import MulticlassCalibrationError

from govtune.data.xnli import LABELS
from govtune.evaluation import evaluate_xnli
from govtune.evaluation.calibration import (T_MAX, T_MIN, TemperatureScaling, check_calibration_sets,
                                            fit_temperature, log_probabilities, scale)
from govtune.evaluation.metrics import expected_calibration_error
from govtune.tasks import load_xnli


def _calibrated(n, seed, classes=3):
    """Logits of a calibrated model: gold drawn from softmax(logits) itself."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=g, dtype=torch.float64) * 2.0
    gold = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).squeeze(1)
    return logits.numpy(), gold.numpy()


@pytest.mark.parametrize("factor", [0.5, 2.5, 4.0])
def test_temperature_recovers_the_overconfidence_factor(factor):
    logits, gold = _calibrated(20000, seed=int(factor * 10))
    assert fit_temperature(logits * factor, gold) == pytest.approx(factor, rel=0.02)
    # From probabilities (the XNLI path): the same T, since log p is the logits shifted per row.
    probs = torch.softmax(torch.from_numpy(logits * factor), -1).numpy()
    assert fit_temperature(log_probabilities(probs), gold) == pytest.approx(factor, rel=0.02)


def test_calibrated_model_gets_t_near_one_and_lbfgs_finds_the_nll_minimum():
    logits, gold = _calibrated(20000, seed=7)
    assert fit_temperature(logits, gold) == pytest.approx(1.0, abs=0.02)
    # On a small, noisy sample: the T of a bounded scalar search on the NLL (scipy, independent of torch).
    z, y = logits[:50] * 3, gold[:50]

    def nll(log_t):
        s = z / np.exp(log_t)
        s = s - s.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y]))

    ref = np.exp(minimize_scalar(nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                                 options={"xatol": 1e-10}).x)
    assert fit_temperature(z, y) == pytest.approx(ref, rel=1e-4)


def test_separable_validation_hits_the_bound_and_scaling_keeps_the_argmax():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [0.1, 0.0, 3.0]])
    # All right: the NLL falls as T -> 0, until it no longer changes in float64 (or T hits T_MIN).
    assert T_MIN <= fit_temperature(logits, [0, 1, 2]) < 0.05
    assert fit_temperature(logits, [2, 0, 0]) == pytest.approx(T_MAX)  # all wrong: as T -> infinity
    probs = torch.softmax(torch.tensor(logits) * 3, -1).numpy()
    for t in (0.3, 1.0, 2.0):
        s = scale(probs, t)
        ref = torch.softmax(torch.log(torch.tensor(probs)) / t, -1).numpy()
        assert np.allclose(s, ref, atol=1e-12) and (s.argmax(1) == probs.argmax(1)).all()
    # A probability that underflowed to 0 keeps the log finite.
    assert np.isfinite(fit_temperature(log_probabilities([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), [1, 2]))


def test_ece_after_scaling_matches_torchmetrics():
    logits, gold = _calibrated(3000, seed=3)
    probs = torch.softmax(torch.from_numpy(logits * 3), -1).numpy()
    ts = TemperatureScaling.fit({"en": probs[:1000]}, {"en": gold[:1000]})
    scaled = ts.apply("en", probs[1000:])
    ref = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(torch.from_numpy(scaled),
                                                                         torch.from_numpy(gold[1000:])).item()
    assert expected_calibration_error(scaled, gold[1000:]) == pytest.approx(100 * ref, abs=1e-4)
    # Over-confidence by 3 is mostly removed: ECE falls from double digits to a few points.
    assert expected_calibration_error(probs[1000:], gold[1000:]) > 10 > 100 * ref


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no validation examples"):
        fit_temperature(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="one gold class index per row"):
        fit_temperature(np.zeros((2, 3)), [0])
    with pytest.raises(ValueError, match="must be in 0..2"):
        fit_temperature(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="empty validation set for 'zh'"):
        TemperatureScaling.fit({"en": np.full((2, 3), 1 / 3), "zh": np.zeros((0, 3))}, {"en": [0, 1], "zh": []})
    ts = TemperatureScaling({"en": 1.5})
    with pytest.raises(ValueError, match="no temperature for language 'hi'"):
        ts.apply("hi", np.full((1, 3), 1 / 3))
    test = {"en": load_xnli("en", rows=range(1245, 1250))}
    with pytest.raises(ValueError, match="no validation examples for 'en'"):
        check_calibration_sets({"zh": load_xnli("zh", rows=range(3))}, test)
    with pytest.raises(ValueError, match="unknown language.*'zh'"):
        check_calibration_sets({"en": load_xnli("en", rows=range(3)), "zh": load_xnli("zh", rows=range(3))}, test)
    with pytest.raises(ValueError, match="empty validation set for 'en'"):
        check_calibration_sets({"en": []}, test)


def test_validation_rows_overlapping_the_test_rows_are_refused():
    test = {"en": load_xnli("en", rows=range(1245, 1250))}
    with pytest.raises(ValueError, match=r"1 'en' validation example\(s\) are also test examples.*xnli-en-dev-1249"):
        check_calibration_sets({"en": load_xnli("en", rows=range(1240, 1250))[:1] + test["en"][-1:]}, test)
    # The same text under another id (a copy in another split or file) is the same row.
    copy = [dict(test["en"][2], id="elsewhere-7", row=7)]
    with pytest.raises(ValueError, match="also test examples"):
        check_calibration_sets({"en": copy}, test)
    check_calibration_sets({"en": load_xnli("en", rows=range(0, 5))}, test)  # the pool rows: fine


def test_evaluate_xnli_fits_on_validation_only(tiny_llama):
    model, tok = tiny_llama
    val = {lang: load_xnli(lang, rows=range(0, 6)) for lang in ("en", "zh")}
    test_a = {lang: load_xnli(lang, rows=range(1245, 1249)) for lang in ("en", "zh")}
    test_b = {lang: load_xnli(lang, rows=range(1300, 1303)) for lang in ("en", "zh")}
    with torch.no_grad():
        ma, pa = evaluate_xnli(model, tok, test_a, robustness=True, progress=False, calibration=val)
        mb, _ = evaluate_xnli(model, tok, test_b, robustness=False, progress=False, calibration=val)
        plain, _ = evaluate_xnli(model, tok, test_a, robustness=False, progress=False)
    # Other test rows, the same temperatures: the test rows never reach the fit.
    for lang in ("en", "zh"):
        assert ma["languages"][lang]["temperature"] == mb["languages"][lang]["temperature"]
        assert ma["languages"][lang]["calibration_n"] == 6
        # T is the fit on the validation rows' own probabilities, scored apart.
        from govtune.evaluation.xnli_eval import score_examples

        vp, _ = score_examples(model, tok, val[lang])
        gold = [LABELS.index(e["label"]) for e in val[lang]]
        assert ma["languages"][lang]["temperature"] == pytest.approx(
            fit_temperature(log_probabilities(vp), gold), rel=1e-6)
        assert ma["languages"][lang]["ece"] == pytest.approx(plain["languages"][lang]["ece"], abs=1e-9)
        clean = [p for p in pa if p["language"] == lang and p["perturbation"] is None]
        raw = np.array([[p["probs"][lab] for lab in LABELS] for p in clean])
        ts = np.array([[p["probs_ts"][lab] for lab in LABELS] for p in clean])
        t = ma["languages"][lang]["temperature"]
        assert np.allclose(ts, torch.softmax(torch.log(torch.from_numpy(raw)) / t, -1).numpy(), atol=1e-9)
        gold_t = torch.tensor([LABELS.index(p["gold"]) for p in clean])
        ref = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(torch.from_numpy(ts), gold_t).item()
        assert ma["languages"][lang]["ece_ts"] == pytest.approx(100 * ref, abs=1e-4)
    assert ma["avg_ece_ts"] == pytest.approx(np.mean([ma["languages"][l]["ece_ts"] for l in ("en", "zh")]))
    assert all("probs_ts" in p for p in pa)  # perturbed records too
    assert "avg_ece_ts" not in plain and "temperature" not in plain["languages"]["en"]
    with pytest.raises(ValueError, match="also test examples"):
        evaluate_xnli(model, tok, test_a, robustness=False, progress=False,
                      calibration={lang: v + test_a[lang][:1] for lang, v in val.items()})
