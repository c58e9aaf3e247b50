"""Evaluation: XNLI accuracy, calibration, parity and robustness; FLORES BLEU and chrF++; statistics."""

from govtune.evaluation.flores_eval import evaluate_flores
from govtune.evaluation.xnli_eval import evaluate_xnli

__all__ = ["evaluate_flores", "evaluate_xnli"]
