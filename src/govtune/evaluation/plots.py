"""Reliability diagrams (matplotlib, Agg backend) written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from govtune.atomic import atomic_write_with  # noqa: E402
from govtune.data.xnli import LABELS  # noqa: E402
from govtune.evaluation.metrics import ECE_BINS, expected_calibration_error, reliability_bins  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """savefig through an atomic write (readers never see half a PNG), then close the figure."""
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def reliability_diagram(predictions: Sequence[dict], path: str | Path, title: str = "",
                        n_bins: int = ECE_BINS, temperatures: dict[str, float] | None = None) -> Path:
    """One panel per language: accuracy against confidence per bin, the diagonal, and the ECE.

    `predictions` are XNLI prediction records (`language`, `probs` by label, `gold`); perturbed copies
    (a non-null `perturbation`) are left out so the diagram describes the clean test set. Records with
    temperature-scaled probabilities (`probs_ts`) get a second row of panels, after scaling
    (`temperatures`, per language, go into its titles)."""
    by_lang: dict[str, list[dict]] = {}
    for p in predictions:
        if p.get("perturbation") is None and p.get("probs") is not None:
            by_lang.setdefault(p["language"], []).append(p)
    if not by_lang:
        raise ValueError("no clean XNLI predictions with probabilities to draw: evaluate XNLI first")
    scaled = all("probs_ts" in p for preds in by_lang.values() for p in preds)
    keys = ["probs", "probs_ts"] if scaled else ["probs"]
    fig, axes = plt.subplots(len(keys), len(by_lang), figsize=(3.6 * len(by_lang), 3.6 * len(keys)),
                             squeeze=False)
    for row, key in enumerate(keys):
        for ax, (lang, preds) in zip(axes[row], by_lang.items()):
            probs = np.array([[p[key][lab] for lab in LABELS] for p in preds])
            gold = np.array([LABELS.index(p["gold"]) for p in preds])
            ece = _reliability_panel(ax, probs, gold, n_bins)
            t = (temperatures or {}).get(lang) if key == "probs_ts" else None
            ax.set_title(f"{lang}{f', T = {t:.2f}' if t is not None else ''}: ECE {ece:.1f}% (n={len(preds)})",
                         fontsize=10)
        axes[row][0].set_ylabel("accuracy" + (" (after T scaling)" if key == "probs_ts" else
                                              " (before scaling)" if scaled else ""))
    fig.subplots_adjust(hspace=0.35)
    axes[0][0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _reliability_panel(ax, probs: np.ndarray, gold: np.ndarray, n_bins: int) -> float:
    """Draw one reliability panel; returns its ECE."""
    bins = reliability_bins(probs, gold, n_bins)
    edges, width = bins["edges"], 1.0 / n_bins
    filled = bins["count"] > 0
    ax.bar(edges[:-1][filled], bins["accuracy"][filled], width=width, align="edge", edgecolor="black",
           color="#4c72b0", label="accuracy")
    # The gap bar spans accuracy..confidence: above the accuracy when over-confident, below when under.
    ax.bar(edges[:-1][filled], (bins["confidence"] - bins["accuracy"])[filled], width=width, align="edge",
           bottom=bins["accuracy"][filled], color="#dd8452", alpha=0.5, hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    return expected_calibration_error(probs, gold, n_bins)
