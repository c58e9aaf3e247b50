"""Temperature scaling in a study: fit on the run's validation examples (pool rows, never test rows),
recorded per run, shown before and after in the report and the reliability diagrams."""

import json

import pytest
import torch

from govtune.data.xnli import LABELS
from govtune.evaluation.calibration import fit_temperature, log_probabilities
from govtune.evaluation.xnli_eval import score_examples
from govtune.models import tiny_model
from govtune.results.layout import StudyLayout
from govtune.study.data import StudyData, curate_study
from govtune.study.grid import run_study


def test_validation_examples_are_pool_rows_apart_from_the_shots(tmp_path, study):
    config = study(val_per_language=3)
    data = StudyData(config, StudyLayout(tmp_path), progress=False)
    curate_study(data, ["c0"], tiny_model)
    train, val = data.training_examples("c0", 8, seed=1)
    by_lang = data.validation_examples("c0", 8, seed=1)
    assert list(by_lang) == ["en", "zh", "hi"] and [len(v) for v in by_lang.values()] == [3, 3, 3]
    assert [r for v in by_lang.values() for r in v] == val  # the examples of the run's validation loss
    shots = {(r["lang"], r["row"]) for r in train}
    for lang, rows in by_lang.items():
        assert all(r["lang"] == lang and 0 <= r["row"] < 60 and (lang, r["row"]) not in shots for r in rows)
    base = data.validation_examples("none", 0, seed=1)  # the base model: the raw pool
    assert [len(v) for v in base.values()] == [3, 3, 3]
    assert all(0 <= r["row"] < 60 for v in base.values() for r in v)
    assert data.validation_examples("c0", 8, seed=1) == by_lang  # seeded


def test_study_records_temperatures_and_reports_ece_before_and_after(tmp_path, study):
    config = study(methods=["lora"], seeds=[0], shots=[0, 8], eval_limit=3, val_per_language=4)
    out = tmp_path / "study"
    outcome = run_study(config, out, progress=False)
    assert not outcome.failed
    results = {r["method"]: r["metrics"] for r in json.loads((out / "results.json").read_text())}
    for metrics in results.values():
        langs = metrics["languages"]
        assert all(v["calibration_n"] == 4 and 0.01 <= v["temperature"] <= 100 for v in langs.values())
        assert metrics["avg_ece_ts"] == pytest.approx(sum(v["ece_ts"] for v in langs.values()) / 3)
    # The base model's T: an independent fit on its validation examples, scored apart.
    model, tok = tiny_model()
    val = StudyData(config, StudyLayout(out), progress=False).validation_examples("none", 0, seed=0)
    with torch.no_grad():
        for lang, exs in val.items():
            probs, _ = score_examples(model, tok, exs)
            want = fit_temperature(log_probabilities(probs), [LABELS.index(e["label"]) for e in exs])
            assert results["base"]["languages"][lang]["temperature"] == pytest.approx(want, rel=1e-6)
    preds = [json.loads(line) for line in (out / "runs" / "lora-k8-c0-s0" / "predictions" / "xnli.jsonl")
             .read_text().splitlines()]
    assert preds and all("probs_ts" in p and "probs" in p for p in preds)
    report = (out / "report.md").read_text()
    section = report.split("### Calibration")[1].split("###")[0]
    assert "| Base (no tuning) |" in section and "| LoRA |" in section and "4 validation examples" in section
    assert (out / "figures" / "reliability_lora.png").stat().st_size > 1000
