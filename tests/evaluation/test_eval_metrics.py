import math
import statistics
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torchmetrics.classification import MulticlassCalibrationError

from govtune.data.flores import load_flores
from govtune.evaluation.metrics import (accuracy, bleu_tokenizer, corpus_bleu, corpus_chrf,
                                        expected_calibration_error, macro, parity_gap,
                                        resampled_calibration_errors)
from govtune.evaluation.stats import mean_sd, welch_p


@pytest.mark.parametrize("seed", range(5))
def test_ece_matches_torchmetrics(seed):
    g = torch.Generator().manual_seed(seed)
    n = 400
    # Peaked softmaxes cover the whole confidence range, sharp and flat.
    logits = torch.randn(n, 3, generator=g) * (0.5 + 4 * torch.rand(n, 1, generator=g))
    probs = torch.softmax(logits.double(), -1)
    gold = torch.randint(0, 3, (n,), generator=g)
    ref = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(probs, gold).item()
    assert expected_calibration_error(probs.numpy(), gold.numpy()) == pytest.approx(100 * ref, abs=1e-4)  # torchmetrics bins in float32


def test_ece_bin_edges_and_perfect_calibration():
    # Confidences exactly on bin edges (k/15) and at 1.0 go where torchmetrics puts them.
    conf = np.array([1 / 15, 2 / 15, 0.5, 14 / 15, 1.0])
    probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], 1)
    gold = np.array([0, 1, 0, 2, 0])
    ref = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(torch.tensor(probs), torch.tensor(gold))
    assert expected_calibration_error(probs, gold) == pytest.approx(100 * ref.item(), abs=1e-4)
    # Always right with confidence 1: calibrated.
    assert expected_calibration_error(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2])) == 0.0


@pytest.mark.parametrize("n_classes", [2, 7])
def test_resampled_ece_equals_one_call_per_resample_bit_for_bit(n_classes):
    rng = np.random.default_rng(n_classes)
    n = 57
    probs = rng.dirichlet(np.full(n_classes, 0.4), size=n)
    probs[:3] = np.eye(n_classes)[0]  # confidence exactly 1.0: the last bin's closed edge
    gold = rng.integers(0, n_classes, size=n)
    idx = rng.integers(0, n, size=(300, n))
    expected = [expected_calibration_error(probs[i], gold[i]) for i in idx]
    assert resampled_calibration_errors(probs, gold, idx).tolist() == expected
    assert resampled_calibration_errors(probs, gold, np.arange(n)[None])[0] == expected_calibration_error(probs, gold)
    with pytest.raises(ValueError, match=r"\(R, n\)"):
        resampled_calibration_errors(probs, gold, np.arange(n))


def test_accuracy_macro_parity_by_hand():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"]) == 75.0
    scores = {"en": 80.0, "zh": 70.0, "hi": 66.0}
    assert macro(scores) == pytest.approx(72.0)
    assert parity_gap(scores) == pytest.approx(14.0)
    assert parity_gap({"en": 50.0}) == 0.0
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="no languages"):
        macro({})


def _cli(hyp_file, ref_file, *args):
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref_file), "-i", str(hyp_file), "-b", "-w", "4", *args],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.parametrize("tgt", ["zh", "es"])
def test_bleu_chrf_match_sacrebleu_cli(tmp_path, tgt):
    ex = load_flores("en", tgt, lines=range(500, 530))
    refs = [e["ref"] for e in ex]
    # Hypotheses of mixed quality: some exact, some cut, some from another sentence.
    hyps = [r if i % 3 == 0 else r[: len(r) // 2] if i % 3 == 1 else refs[(i + 1) % len(refs)]
            for i, r in enumerate(refs)]
    (tmp_path / "hyp").write_text("\n".join(hyps) + "\n", encoding="utf-8")
    (tmp_path / "ref").write_text("\n".join(refs) + "\n", encoding="utf-8")
    tok = bleu_tokenizer(tgt)
    assert tok == ("zh" if tgt == "zh" else "13a")
    bleu = corpus_bleu(hyps, refs, tgt)
    assert 5 < bleu < 95
    assert bleu == pytest.approx(_cli(tmp_path / "hyp", tmp_path / "ref", "-m", "bleu", "-tok", tok), abs=1e-4)
    chrf = corpus_chrf(hyps, refs)
    assert chrf == pytest.approx(_cli(tmp_path / "hyp", tmp_path / "ref", "-m", "chrf", "--chrf-word-order", "2"),
                                 abs=1e-4)


def test_mean_sd_and_welch_by_hand():
    a, b = [77.1, 77.5, 77.3], [78.8, 79.1, 78.9, 79.4]
    m, sd = mean_sd(a)
    assert m == pytest.approx(statistics.mean(a)) and sd == pytest.approx(statistics.stdev(a))
    assert math.isnan(mean_sd([1.0])[1])
    # Welch's t and Welch-Satterthwaite degrees of freedom written out.
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    assert welch_p(a, b) == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)
    assert math.isnan(welch_p([1.0], b))
