"""Across-seed statistics: mean and sample standard deviation, Welch's t-test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample sd with ddof=1); sd is NaN for a single value (one seed says nothing about spread)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean of no values: run at least one seed")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan")


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances). NaN when either side has < 2 values or
    both have zero variance (the test is undefined there, and a p-value would mislead)."""
    from scipy.stats import ttest_ind

    a, b = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return float("nan")
    return float(ttest_ind(a, b, equal_var=False).pvalue)
