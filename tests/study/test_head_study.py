"""`head: classifier` in a study: checked before any work, hashed, trained on the LM option's sample, scored
by the XNLI evaluator through the head, and saved so the run evaluates again to the same probabilities."""

import json
import math
from pathlib import Path

import pytest

from govtune.adapters import adapter_layers
from govtune.cli.eval import load_for_eval
from govtune.data.xnli import LABELS
from govtune.evaluation import evaluate_xnli
from govtune.evaluation.scoring import is_classifier
from govtune.models import tiny_model
from govtune.results.layout import StudyLayout
from govtune.study.config import StudyConfig
from govtune.study.data import StudyData, curate_study
from govtune.study.grid import run_study
from govtune.text.prompts import xnli_training_pair
from govtune.training import latest_checkpoint

INTENTS = str(Path(__file__).resolve().parents[2] / "examples" / "intents" / "intents.yaml")


@pytest.mark.parametrize("overrides, message", [
    (dict(head="linear"), r"head: unknown value 'linear'.*use lm \(score the label words"),
    (dict(tasks=["xnli", "flores"]), r"tasks also lists flores: use tasks=xnli for the study with the head"),
    (dict(tasks=["xnli", INTENTS]), r"tasks also lists .*intents.yaml: use tasks=xnli"),
    (dict(methods=["lora", "hybrid"]), r"cannot train method 'hybrid': hybrid initialises its adapter from the "
                                       r"gradient of the language-model loss"),
    (dict(methods=["h50"], variants={"h50": {"method": "hybrid", "lam_schedule": "fixed", "lam_fixed": 0.5}}),
     r"cannot train method 'h50': hybrid initialises"),
    (dict(methods=["full"]), r"method 'full' trains every weight instead: drop it, or use head: lm"),
    (dict(lm_eval_tasks=["govtune-xnli"]), r"replaces the language-model head the lm_eval_tasks \(govtune-xnli\)"),
], ids=["value", "flores", "task-file", "hybrid", "variant", "full", "lm_eval"])
def test_head_settings_that_cannot_run_fail_with_the_fix(study, overrides, message):
    with pytest.raises(ValueError, match=message):
        study(**{"head": "classifier", "methods": ["lora"], **overrides})


def test_head_is_hashed_only_when_set(study):
    assert "head" not in StudyConfig().settings()  # studies run before the key existed still resume
    assert study(methods=["lora"]).settings_hash() == study(methods=["lora"], head="lm").settings_hash()
    head = study(methods=["lora"], head="classifier")
    assert head.settings()["head"] == "classifier"
    assert head.settings_hash() != study(methods=["lora"]).settings_hash()


def test_head_rows_are_the_lm_options_sample(tmp_path, study):
    config = study(methods=["lora"], head="classifier", val_per_language=3)
    data = StudyData(config, StudyLayout(tmp_path), progress=False)
    curate_study(data, ["c0"], tiny_model)
    train, val, counts = data.head_examples("c0", 8, seed=1)
    pairs, val_pairs, lm_counts = data.training_pairs("c0", 8, seed=1)
    rows, val_rows = data.training_examples("c0", 8, seed=1)
    assert counts == lm_counts and len(train) == 24 and len(val) == 9
    for examples, pair_list, source in ((train, pairs, rows), (val, val_pairs, val_rows)):
        assert [(e.premise, e.hypothesis, LABELS[e.label]) for e in examples] == \
            [(r["premise"], r["hypothesis"], r["label"]) for r in source]
        assert pair_list == [xnli_training_pair(r) for r in source]
    assert data.head_labels() == LABELS


def test_head_study_runs_end_to_end_and_its_saved_run_scores_the_same(tmp_path, study):
    config = study(methods=["lora"], seeds=[0], shots=[8], eval_limit=3, head="classifier", epochs=2)
    out = tmp_path / "study"
    outcome = run_study(config, out, progress=False)
    assert not outcome.failed and outcome.ran == ["lora-k8-c0-s0"]
    (result,) = json.loads((out / "results.json").read_text())
    metrics = result["metrics"]
    assert result["task"] == "xnli" and set(metrics["languages"]) == {"en", "zh", "hi"}
    assert all(v["n"] == 3 and "ece_ts" in v for v in metrics["languages"].values())
    assert "macro" in metrics and "robustness" in metrics and "avg_ece_ts" in metrics
    run = out / "runs" / "lora-k8-c0-s0"
    history = json.loads((run / "history.json").read_text())
    # the validation loss is the head's cross-entropy per row: about ln 3 for the fresh head
    assert history["initial_val_loss"] == pytest.approx(math.log(3), abs=0.15)
    assert len(history["epochs"]) == 2 and all(e["val_loss"] > 0 for e in history["epochs"])

    adapter = latest_checkpoint(run / "checkpoint") / "adapter"
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["head"] == {"module": "score", "labels": list(LABELS)} and saved["modules_to_save"] == ["score"]
    model, tok = load_for_eval(config.model, str(adapter))
    assert is_classifier(model) and adapter_layers(model)
    tunable = sum(p.numel() for layer in adapter_layers(model).values() for p in layer.parameters()
                  if p.requires_grad) + model.score.weight.numel()
    # the head counts (recorded to 4 decimals: 0.0038 here, the adapter alone 0.0036)
    assert result["footprint"]["tunable_params_m"] == pytest.approx(tunable / 1e6, abs=5e-5)

    tests = StudyData(config, StudyLayout(out), progress=False).test_sets("xnli")
    _, again = evaluate_xnli(model, tok, tests, batch_size=config.eval_batch_size, robustness=False, progress=False)
    recorded = [json.loads(line) for line in (run / "predictions" / "xnli.jsonl").read_text().splitlines()]
    recorded = {(p["language"], p["index"]): p["probs"] for p in recorded if p["perturbation"] is None}
    assert len(again) == len(recorded) == 9
    for p in again:
        assert p["probs"] == pytest.approx(recorded[(p["language"], p["index"])], abs=1e-6)
