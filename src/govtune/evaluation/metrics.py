"""Corpus-level metrics, in percent: accuracy, expected calibration error, macro and parity gap, BLEU, chrF++.

Per-example outputs (probabilities, hypotheses) are kept apart from these aggregations, as in
lm-evaluation-harness: ECE and BLEU are properties of a set of examples, never averages of per-example
scores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

ECE_BINS = 15


def accuracy(predictions: Sequence, gold: Sequence) -> float:
    if len(predictions) != len(gold):
        raise ValueError(f"{len(predictions)} predictions for {len(gold)} gold labels: pass one per example")
    if not len(gold):
        raise ValueError("accuracy of an empty set: evaluate at least one example")
    return 100.0 * float(np.mean([p == g for p, g in zip(predictions, gold)]))


def macro_f1(predictions: Sequence, gold: Sequence, labels: Sequence) -> float:
    """Macro-averaged F1 over `labels` in percent (a class never predicted nor gold scores 0, as
    scikit-learn's zero_division=0). Three lines of counting: not worth a dependency."""
    pred, gold = np.asarray(predictions, dtype=object), np.asarray(gold, dtype=object)
    scores = []
    for lab in labels:
        tp = float(np.sum((pred == lab) & (gold == lab)))
        denom = float(np.sum(pred == lab) + np.sum(gold == lab))
        scores.append(2 * tp / denom if denom else 0.0)
    return 100.0 * float(np.mean(scores))


def exact_match(hypothesis: str, reference: str) -> bool:
    """Equal after case folding and whitespace collapsing (SQuAD-style normalisation without dropping
    punctuation or articles, which differ across languages)."""
    return " ".join(hypothesis.casefold().split()) == " ".join(reference.casefold().split())


def _confidence_bins(probs, gold, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example: top-label confidence, whether the top label is the gold one (0/1), and its bin."""
    probs = np.asarray(probs, dtype=np.float64)
    gold = np.asarray(gold)
    if probs.ndim != 2 or len(probs) != len(gold):
        raise ValueError(f"probabilities must be (N, C) with one gold index per row, got {probs.shape} and "
                         f"{gold.shape}")
    if not len(gold):
        raise ValueError("ECE of an empty set: evaluate at least one example")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == gold).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin k holds confidences in [edge_k, edge_k+1); 1.0 goes to the last bin (torchmetrics' bucketing).
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    return conf, correct, which


def _bin_stats(probs, gold, n_bins: int):
    conf, correct, which = _confidence_bins(probs, gold, n_bins)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=n_bins)
    return count, conf_sum, acc_sum


def expected_calibration_error(probs, gold, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE with equal-width bins and the L1 norm, in percent (Guo et al., 2017).

    Twelve lines of numpy rather than torchmetrics' MulticlassCalibrationError (a test-only dependency
    here, used in the tests as the reference this must match)."""
    count, conf_sum, acc_sum = _bin_stats(probs, gold, n_bins)
    return 100.0 * float(np.abs(conf_sum - acc_sum).sum() / count.sum())


def resampled_calibration_errors(probs, gold, idx, n_bins: int = ECE_BINS) -> np.ndarray:
    """The ECE of every resample at once: row r of `idx` (R x n) lists the examples of resample r. Equal to
    `[expected_calibration_error(probs[i], gold[i]) for i in idx]`, bit for bit (each resample's bins are
    summed in the same order); one bincount over all resamples instead of R calls, which a bootstrap over a
    few hundred languages made the report's slowest part."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or not idx.shape[1]:
        raise ValueError(f"resample indices must be (R, n) with n >= 1, got shape {idx.shape}")
    conf, correct, which = _confidence_bins(probs, gold, n_bins)
    n_resamples = len(idx)
    cell = (which[idx] + n_bins * np.arange(n_resamples)[:, None]).ravel()  # (resample, bin) as one index
    size, shape = n_resamples * n_bins, (n_resamples, n_bins)
    count = np.bincount(cell, minlength=size).astype(np.float64).reshape(shape)
    conf_sum = np.bincount(cell, weights=conf[idx].ravel(), minlength=size).reshape(shape)
    acc_sum = np.bincount(cell, weights=correct[idx].ravel(), minlength=size).reshape(shape)
    return 100.0 * (np.abs(conf_sum - acc_sum).sum(axis=1) / count.sum(axis=1))


def reliability_bins(probs, gold, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per bin: count, mean confidence, accuracy (NaN where empty); the data of a reliability diagram."""
    count, conf_sum, acc_sum = _bin_stats(probs, gold, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": np.linspace(0, 1, n_bins + 1), "count": count,
                "confidence": conf_sum / count, "accuracy": acc_sum / count}


def macro(scores: Mapping[str, float]) -> float:
    """Unweighted mean over languages (or directions)."""
    if not scores:
        raise ValueError("macro average of no languages: evaluate at least one")
    return float(np.mean(list(scores.values())))


# Above this many languages the parity gap is also given between deciles (the max - min of a few hundred
# languages is set by its two extremes alone).
MAX_RANGE_LANGUAGES = 5


def decile_count(n_languages: int) -> int:
    """Languages in a decile: a tenth, rounded up, so every language count above 5 has at least one."""
    return max(1, math.ceil(n_languages / 10))


def decile_gaps(acc: np.ndarray) -> np.ndarray:
    """(languages, resamples) accuracies -> best-decile mean - worst-decile mean per resample; languages
    are re-ranked on every resample (the gap between whichever languages are best and worst there)."""
    k = decile_count(acc.shape[0])
    s = np.sort(acc, axis=0)
    return s[-k:].mean(axis=0) - s[:k].mean(axis=0)


def decile_gap(scores: Mapping[str, float]) -> float:
    """Mean accuracy of the best decile of languages minus that of the worst decile."""
    if not scores:
        raise ValueError("decile gap of no languages: evaluate at least one")
    return float(decile_gaps(np.array(list(scores.values()), dtype=np.float64)[:, None])[0])


def parity_gap(scores: Mapping[str, float]) -> float:
    """max - min across languages (or directions); 0 for a single one."""
    if not scores:
        raise ValueError("parity gap of no languages: evaluate at least one")
    return float(max(scores.values()) - min(scores.values()))


# Scripts written without spaces between words, scored by characters (sacreBLEU's `char`; `ja-mecab` and
# `ko-mecab` need MeCab, which govtune does not install).
CHAR_TOKENIZED = ("ja", "jpn", "th", "tha", "ko", "kor", "my", "mya", "km", "khm", "lo", "lao")


def bleu_tokenizer(tgt_lang: str) -> str:
    """sacreBLEU's tokenizer for a target language: "zh" for Chinese, "char" for Japanese, Thai, Korean and
    other scripts without word spaces, "13a" otherwise (the paper's setting)."""
    code = tgt_lang.split("_")[0]
    if code in ("zh", "zho", "cmn"):
        return "zh"
    return "char" if code in CHAR_TOKENIZED else "13a"


def bleu_metric(tgt_lang: str):
    """sacreBLEU's BLEU as scored here (defaults, the target's tokenizer); the bootstrap reuses it."""
    return BLEU(tokenize=bleu_tokenizer(tgt_lang))


def chrf_metric():
    """chrF++ (character 6-grams plus word bigrams)."""
    return CHRF(word_order=2)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], tgt_lang: str) -> float:
    """Detokenised corpus BLEU (sacreBLEU defaults, one reference)."""
    return bleu_with_signature(hypotheses, references, tgt_lang)[0]


def bleu_with_signature(hypotheses: Sequence[str], references: Sequence[str], tgt_lang: str) -> tuple[float, str]:
    """(BLEU, sacreBLEU signature): the signature says exactly how the score was computed."""
    _check(hypotheses, references)
    bleu = bleu_metric(tgt_lang)
    score = bleu.corpus_score(list(hypotheses), [list(references)]).score
    return float(score), str(bleu.get_signature())


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """chrF++ (character 6-grams plus word bigrams)."""
    _check(hypotheses, references)
    return float(chrf_metric().corpus_score(list(hypotheses), [list(references)]).score)


def _check(hyps, refs):
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references: pass one per source line")
    if not len(refs):
        raise ValueError("BLEU of an empty set: translate at least one sentence")
