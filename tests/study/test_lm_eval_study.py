"""The study key `lm_eval_tasks`: lm-evaluation-harness after training in every cell, stored under task
`lm_eval` and tabled per method in the report."""

import json
import sqlite3

import pytest

pytest.importorskip("lm_eval")

from govtune.study.grid import run_study  # noqa: E402


def test_lm_eval_tasks_run_in_every_cell_and_make_a_table(tmp_path, study):
    config = study(methods=["lora"], seeds=[0, 1], shots=[0, 8], eval_limit=2, lm_eval_tasks=["govtune-xnli-en"],
                   lm_eval_limit=4)
    out = tmp_path / "study"
    run_study(config, out, progress=False)
    values = {}
    for run in ("base-k0-none-s0", "lora-k8-c0-s0", "lora-k8-c0-s1"):
        rdir = out / "runs" / run
        lm = json.loads((rdir / "result.json").read_text())["metrics"]["lm_eval"]
        raw = json.loads((rdir / "lm_eval" / "results.json").read_text())["results"]["govtune-xnli-en"]
        row = lm["tasks"]["govtune-xnli-en"]
        assert row == {"acc": raw["acc,none"], "acc_stderr": raw["acc_stderr,none"], "acc_norm": raw["acc_norm,none"],
                       "acc_norm_stderr": raw["acc_norm_stderr,none"], "n": 4.0}
        assert lm["limit"] == 4 and (rdir / "lm_eval" / "tasks" / "govtune-xnli-en.yaml").exists()
        values[run] = row
        # govtune's per-language analysis from the run's samples file: lm-eval's acc in percent, with intervals
        per = lm["per_language"]["govtune-xnli"]
        assert per["languages"]["en"]["accuracy"] == pytest.approx(100 * raw["acc,none"], abs=1e-9)
        assert per["languages"]["en"]["n"] == 4 and per["parity"] == "max - min"
        assert len(list((rdir / "lm_eval").glob("samples_govtune-xnli-en_*.jsonl"))) == 1
        assert (rdir / "lm_eval" / "per_language.json").exists()
        assert "| en | govtune-xnli-en | 4 |" in (rdir / "lm_eval" / "per_language.md").read_text()
        ci = json.loads((rdir / "result.json").read_text())["ci95"]["lm_eval"]
        lo, hi = ci["per_language.govtune-xnli.languages.en.accuracy"]
        assert lo <= per["languages"]["en"]["accuracy"] <= hi

    entries = [e for e in json.loads((out / "results.json").read_text()) if e["task"] == "lm_eval"]
    assert len(entries) == 3
    con = sqlite3.connect(out / "results.sqlite")
    stored = dict(con.execute("SELECT run_id, value FROM metrics WHERE task = 'lm_eval' AND "
                              "metric = 'tasks.govtune-xnli-en.acc'").fetchall())
    assert stored == {run: v["acc"] for run, v in values.items()}
    rows = con.execute("SELECT value, ci_low, ci_high FROM metrics WHERE task = 'lm_eval' AND "
                       "metric = 'per_language.govtune-xnli.languages.en.accuracy'").fetchall()
    assert len(rows) == 3 and all(lo <= v <= hi for v, lo, hi in rows)

    report = (out / "report.md").read_text()
    section = report.split("### General benchmarks (lm-evaluation-harness)")[1].split("###")[0]
    assert "| Method | govtune-xnli-en acc | govtune-xnli-en acc_norm |" in section
    base = values["base-k0-none-s0"]
    assert f"| Base (no tuning) | {base['acc']:.3f} | {base['acc_norm']:.3f} |" in section
    lora = [values["lora-k8-c0-s0"]["acc"], values["lora-k8-c0-s1"]["acc"]]
    mean = sum(lora) / 2
    sd = (sum((v - mean) ** 2 for v in lora)) ** 0.5  # ddof = 1 over two seeds
    assert f"| LoRA | {mean:.3f} ± {sd:.3f} |" in section
    assert "the first 4 test examples" in section


def test_lm_eval_keys_validate_and_stay_out_of_older_studies_hash(study):
    plain = study()
    assert "lm_eval_tasks" not in plain.settings() and "lm_eval_limit" not in plain.settings()
    with_lm = study(lm_eval_tasks=["govtune-xnli"])
    assert with_lm.settings()["lm_eval_tasks"] == ["govtune-xnli"]
    assert with_lm.settings_hash() != plain.settings_hash()
    with pytest.raises(ValueError, match="lm_eval_limit must be >= 1"):
        study(lm_eval_limit=0)


def test_per_language_keys_validate_before_any_cell(study, tmp_path):
    plain = study()
    assert not {"lm_eval_lang_map", "lm_eval_calibrate_on", "lm_eval_per_language"} & set(plain.settings())
    with pytest.raises(ValueError, match="serve the per-language analysis of lm_eval_tasks"):
        study(lm_eval_calibrate_on=["govtune-xnli-val"])
    with pytest.raises(ValueError, match="no calibration task for 'hi'"):
        study(lm_eval_tasks=["govtune-xnli"], lm_eval_calibrate_on=["govtune-xnli-val-en", "govtune-xnli-val-zh"])
    cal = study(lm_eval_tasks=["govtune-xnli"], lm_eval_calibrate_on=["govtune-xnli-val"])
    assert cal.lm_eval_run_tasks() == ["govtune-xnli", "govtune-xnli-val"]
    assert cal.settings_hash() != study(lm_eval_tasks=["govtune-xnli"]).settings_hash()
