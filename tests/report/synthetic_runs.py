"""A classification run written by hand for the report tests: per-language records whose predictions are right
where `right(lang, i)` says, the metrics computed from them as a study computes them, and the run's result."""

from collections.abc import Callable

import numpy as np

from govtune.evaluation import bootstrap as bs
from govtune.evaluation.metrics import accuracy, decile_gap, expected_calibration_error, macro, parity_gap

TASK = "topics"
LABELS = ("science", "travel", "sports")


def classification_run(run_id: str, method: str, seed: int, shots: int, curation: str, langs: list[str], n: int,
                       right: Callable[[str, int], bool]) -> tuple[dict, dict]:
    """(result, {task: records}) of one run over `langs`, `n` examples each, 0.6 on the predicted class."""
    recs, acc, ece = [], {}, {}
    for lang in langs:
        for i in range(n):
            gold = i % 3
            pred = gold if right(lang, i) else (gold + 1) % 3
            probs = np.full(3, 0.2)
            probs[pred] = 0.6
            recs.append({"language": lang, "index": i, "id": f"{lang}-{i}", "perturbation": None,
                         "probs": dict(zip(LABELS, probs.tolist())), "prediction": LABELS[pred],
                         "gold": LABELS[gold], "correct": pred == gold})
        rows = [r for r in recs if r["language"] == lang]
        gold = [LABELS.index(r["gold"]) for r in rows]
        acc[lang] = accuracy([LABELS.index(r["prediction"]) for r in rows], gold)
        ece[lang] = expected_calibration_error([[r["probs"][lab] for lab in LABELS] for r in rows], gold)
    metrics = {"task": TASK, "languages": {lang: {"accuracy": acc[lang], "ece": ece[lang], "n": n} for lang in langs},
               "macro": macro(acc), "parity_gap": parity_gap(acc), "decile_gap": decile_gap(acc),
               "avg_ece": macro(ece)}
    result = {"run_id": run_id, "method": method, "seed": seed, "shots": shots, "curation": curation,
              "model": "tiny-llama", "metrics": {TASK: metrics}, "ci95": {TASK: bs.task_intervals(TASK, recs)},
              "footprint": {"peak_memory_mb": 100.0, "step_time_s": 1.0, "tunable_params_m": 0.1,
                            "memory_kind": None, "train_steps": 4}, "lam_final": None}
    return result, {TASK: recs}
