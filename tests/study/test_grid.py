import json
import os
import re
import sqlite3

import pytest
import torch

from govtune.evaluation import bootstrap as bs
from govtune.models import tiny_model
from govtune.results.store import flatten, load_predictions
from govtune.study.cell import grid_cells
from govtune.study.grid import run_study


class Interrupt(Exception):
    pass


def _stop_after_first(cell):
    raise Interrupt(cell.run_id)


def test_grid_runs_end_to_end_resumes_and_never_reruns_a_cell(tmp_path, study):
    config = study(shots=[0, 8], eval_limit=3)
    cells = [c.run_id for c in grid_cells(config)]
    assert cells == ["base-k0-none-s0", "lora-k8-c0-s0", "lora-k8-c0-s1", "hybrid-k8-c0-s0", "hybrid-k8-c0-s1"]
    out = tmp_path / "study"
    with pytest.raises(Interrupt):  # the study dies after its first cell
        run_study(config, out, progress=False, after_cell=_stop_after_first)
    assert sorted(p.parent.name for p in out.glob("runs/*/done")) == ["base-k0-none-s0"]

    outcome = run_study(config, out, resume=True, progress=False)
    assert outcome.skipped == ["base-k0-none-s0"] and outcome.ran == cells[1:] and not outcome.failed
    stamps = {p: p.read_text() for p in out.glob("runs/*/done")}
    again = run_study(config, out, resume=True, progress=False, report=False)
    assert again.ran == [] and sorted(again.skipped) == sorted(cells)
    assert {p: p.read_text() for p in out.glob("runs/*/done")} == stamps

    results = json.loads((out / "results.json").read_text())
    assert len(results) == 5 and {r["task"] for r in results} == {"xnli"}
    by = {(r["method"], r["seed"]): r for r in results}
    assert by[("base", 0)]["footprint"]["tunable_params_m"] == 0
    assert by[("hybrid", 1)]["lam_final"] and "lam_final" not in by[("lora", 0)]
    assert all(0 < v < 1 for v in by[("hybrid", 1)]["lam_final"].values())
    assert by[("lora", 0)]["metrics"]["languages"]["en"]["n"] == 3
    wall = ("wall_time_s", "cpu_count", "load_1min_start", "load_1min_end")

    def trained(r):  # the footprint of training alone: a run's wall time and load differ between any two runs
        return {k: v for k, v in r["footprint"].items() if k not in wall}

    lora0, lora1 = by[("lora", 0)], by[("lora", 1)]
    assert lora0["metrics"] != lora1["metrics"] or trained(lora0) != trained(lora1)
    for r in results:  # every run, trained or not, says how long it took and how busy the machine was
        fp = r["footprint"]
        assert fp["wall_time_s"] > 0 and fp["cpu_count"] == os.cpu_count()
        assert all(fp[k] is None or fp[k] >= 0 for k in ("load_1min_start", "load_1min_end"))

    # every results.json number is one SQLite row, and nothing else is
    con = sqlite3.connect(out / "results.sqlite")
    runs = {r[0]: r[1:] for r in con.execute("SELECT run_id, method, seed, shots FROM runs")}
    assert len(runs) == 5
    rows = {}
    for run_id, task, metric, value in con.execute("SELECT run_id, task, metric, value FROM metrics"):
        method, seed, shots = runs[run_id]
        rows[(method, seed, shots, task, metric)] = value
    expected = {}
    for r in results:
        for k, v in flatten(r["metrics"]).items():
            expected[(r["method"], r["seed"], r["shots"], "xnli", k)] = v
        for k, v in flatten(r["footprint"]).items():
            if v is not None:
                expected[(r["method"], r["seed"], r["shots"], "footprint", k)] = v
    assert rows == pytest.approx(expected)
    # ci95: keyed like the SQLite metric rows, the same [low, high] in both stores, one per headline metric
    cis = {(runs[run_id][0], runs[run_id][1], metric): (lo, hi) for run_id, metric, lo, hi in con.execute(
        "SELECT run_id, metric, ci_low, ci_high FROM metrics WHERE ci_low IS NOT NULL")}
    headline = {"macro", "parity_gap", "avg_ece", "robustness.macro_drop",
                *[f"languages.{lang}.{m}" for lang in ("en", "zh", "hi") for m in ("accuracy", "ece")],
                *[f"robustness.by_language.{lang}.drop" for lang in ("en", "zh", "hi")]}
    for r in results:
        assert set(r["ci95"]) == headline and set(r["ci95"]) <= set(flatten(r["metrics"]))
        for k, (lo, hi) in r["ci95"].items():
            assert cis[(r["method"], r["seed"], k)] == pytest.approx((lo, hi)) and lo <= hi
    n_clean = {run_id: sum(1 for line in (out / "runs" / run_id / "predictions" / "xnli.jsonl").open()
                           if json.loads(line)["perturbation"] is None) for run_id in runs}
    assert dict(con.execute("SELECT run_id, COUNT(*) FROM predictions GROUP BY run_id")) == n_clean
    assert set(n_clean.values()) == {9}  # 3 languages x eval_limit 3
    for run_id in runs:  # the store's predictions give back the evaluator's numbers, robustness included
        units = bs.xnli_units(load_predictions(out, run_id, "xnli"))
        point = {k: v[0] for k, v in bs.xnli_replicates(units, bs.identity(units)).items()}
        assert set(point) == headline
        assert point == pytest.approx({k: rows[(*runs[run_id], "xnli", k)] for k in point}, abs=1e-9)
    curves = {c for (c,) in con.execute("SELECT DISTINCT curve FROM curves")}
    assert {"epoch/val_loss", "epoch/grad_norm", "step/loss"} <= curves and any(c.startswith("lam/") for c in curves)

    report = (out / "report.md").read_text()
    assert "tiny-llama" in report and "2 seed(s)" in report and "Few-shot scaling" in report
    assert "| LoRA |" in report and "| Hybrid |" in report and "Base (no tuning)" in report
    assert "Data curation ablation" not in report  # one stage: no curation table
    assert "### Differences and significance" in report and "| Hybrid − LoRA |" in report
    assert "| Hybrid − Base (no tuning) |" in report and "95% bootstrap interval over the test examples" in report
    num = r"-?\d+\.\d"
    assert re.search(rf"\| LoRA \| {num} ± {num} \[{num}, {num}\] \|", report)  # 2 seeds: mean ± sd [seed-mean CI]
    assert re.search(rf"\| Base \(no tuning\) \| {num} \[{num}, {num}\] \|", report)  # one run: its ci95
    for fig in ("frontier.png", "dynamics.png", "scaling.png", "lam.png", "reliability_hybrid.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    assert "<table>" in (out / "report.html").read_text()

    # a lost database is rebuilt from the runs' own files by resuming; the report is the same
    def dump():
        with sqlite3.connect(out / "results.sqlite") as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}

    con.close()
    before = dump()
    assert before["runs"] and before["curves"] and before["predictions"] and before["scaled_predictions"]
    (out / "results.sqlite").unlink()
    assert run_study(config, out, resume=True, progress=False).ran == []
    assert dump() == before and (out / "report.md").read_text() == report


def test_diverging_cell_is_recorded_as_failed_with_its_checkpoint_and_the_grid_goes_on(tmp_path, study):
    calls = {"n": 0}

    def loader():
        model, tok = tiny_model()

        def poison(module, inputs, output):
            if module.training:
                calls["n"] += 1
                if calls["n"] == 5:  # 3 steps per epoch: step 5 of the first cell, in epoch 2
                    return output * float("nan")
            return output

        model.lm_head.register_forward_hook(poison)
        return model, tok

    config = study(methods=["lora"], seeds=[0, 1], epochs=2)
    outcome = run_study(config, tmp_path / "s", progress=False, model_loader=loader, report=False)
    assert list(outcome.failed) == ["lora-k8-c0-s0"] and outcome.ran == ["lora-k8-c0-s1"]
    run = tmp_path / "s" / "runs" / "lora-k8-c0-s0"
    message = (run / "failed").read_text()
    assert "step 5 (epoch 2)" in message and "checkpoint-step3" in message
    assert (run / "checkpoint" / "checkpoint-step3" / "trainer_state.pt").exists()
    assert not (run / "done").exists()
    assert [r["seed"] for r in json.loads((tmp_path / "s" / "results.json").read_text())] == [1]


def test_out_of_memory_is_reported_as_such_and_keeps_finished_runs(tmp_path, study):
    config = study(methods=["lora"], seeds=[0])

    def loader():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(MemoryError, match="does not fit in memory.*batch_size"):
        run_study(config, tmp_path / "s", progress=False, model_loader=loader)


def test_cell_interrupted_mid_training_resumes_from_its_epoch_checkpoint(tmp_path, study):
    config = study(methods=["lora"], seeds=[0], epochs=2)
    forwards = {"n": 0}

    def loader(stop_at=None):
        def make():
            model, tok = tiny_model()

            def count(module, inputs, output):
                if module.training:
                    forwards["n"] += 1
                    if forwards["n"] == stop_at:
                        raise Interrupt("killed")

            model.lm_head.register_forward_hook(count)
            return model, tok
        return make

    run_study(config, tmp_path / "whole", progress=False, model_loader=loader(), report=False)
    per_cell, forwards["n"] = forwards["n"], 0
    assert per_cell == 6  # 3 training steps per epoch
    with pytest.raises(Interrupt):  # killed in the second epoch, after the first epoch's checkpoint
        run_study(config, tmp_path / "cut", progress=False, model_loader=loader(stop_at=5), report=False)
    run = tmp_path / "cut" / "runs" / "lora-k8-c0-s0"
    assert (run / "checkpoint" / "checkpoint-step3").is_dir() and not (run / "done").exists()

    forwards["n"] = 0
    outcome = run_study(config, tmp_path / "cut", resume=True, progress=False, model_loader=loader(), report=False)
    assert outcome.ran == ["lora-k8-c0-s0"] and forwards["n"] == 3  # only the second epoch ran again
    whole, cut = (json.loads((tmp_path / d / "results.json").read_text())[0] for d in ("whole", "cut"))
    scores = [{k: v for k, v in flatten(r["metrics"]).items() if ".timing." not in f".{k}"} for r in (cut, whole)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-4)
    assert [e["epoch"] for e in json.loads((run / "history.json").read_text())["epochs"]] == [1, 2]


def test_incontext_baseline_runs_the_untuned_model_on_the_k_shot_sample_in_its_prompts(tmp_path, study):
    from govtune.evaluation import evaluate_xnli
    from govtune.tasks.incontext import attach
    from govtune.study.data import StudyData
    from govtune.results.layout import StudyLayout
    from govtune.governance import sample_kshot
    from govtune.models import tiny_model

    config = study(methods=["lora"], seeds=[0], shots=[0, 8], incontext_shots=2, eval_limit=3, robustness=False)

    def long_context_model():  # byte-level prompts with demonstrations outgrow the tiny model's 512 positions
        model, tok = tiny_model()
        model.config.max_position_embeddings = 8192  # rotary positions: no weights depend on it
        return model, tok

    assert [c.run_id for c in grid_cells(config)] == ["base-k0-none-s0", "icl-k0-c0-s0", "lora-k8-c0-s0"]
    out = tmp_path / "study"
    run_study(config, out, progress=False, model_loader=long_context_model)
    icl = [json.loads(line) for line in (out / "runs" / "icl-k0-c0-s0" / "predictions" / "xnli.jsonl")
           .read_text().splitlines()]
    base = [json.loads(line) for line in (out / "runs" / "base-k0-none-s0" / "predictions" / "xnli.jsonl")
            .read_text().splitlines()]
    assert [r["id"] for r in icl] == [r["id"] for r in base] and [r["probs"] for r in icl] != [r["probs"] for r in base]

    # The same numbers from the untuned model with the seed-0 2-shot sample of the curated pool before each prompt.
    data = StudyData(config, StudyLayout(out), progress=False)
    kept = data.curated("c0")
    shots = sample_kshot(kept, config.languages, 2, seed=0)
    tests = attach(data.test_sets("xnli"), {lang: [r for r in shots if r["lang"] == lang] for lang in config.languages},
                   "xnli")
    model, tok = long_context_model()
    with torch.no_grad():
        _, direct = evaluate_xnli(model, tok, tests, robustness=False, progress=False)
    for a, b in zip(icl, direct):
        assert a["id"] == b["id"]
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-6)
    assert not {r["row"] for r in shots} & {r["row"] for exs in data.test_sets("xnli").values() for r in exs}

    report = (out / "report.md").read_text()
    assert "| Base + in-context |" in report and "LoRA − Base + in-context" in report
    assert "Base + in-context: the untuned model with 2 examples per language" in report


def test_the_hybrid_reuses_the_lora_ga_gradient_and_gets_the_same_result(tmp_path, study):
    """A hybrid cell after the LoRA-GA cell of the same seed and sample takes the runner's cached gradient
    estimate; its result equals the hybrid run in a study of its own, which estimates it afresh."""
    from govtune.study.grid import StudyRunner

    shared = StudyRunner(study(methods=["lora_ga", "hybrid"], seeds=[0]), tmp_path / "both", progress=False)
    shared.run(report=False)
    assert shared.gradient_cache.hits == 1
    alone = StudyRunner(study(methods=["hybrid"], seeds=[0]), tmp_path / "alone", progress=False)
    alone.run(report=False)
    assert alone.gradient_cache.hits == 0
    def metrics(root):
        m = json.loads((root / "runs" / "hybrid-k8-c0-s0" / "result.json").read_text())["metrics"]
        return {task: {k: v for k, v in block.items() if k != "timing"} for task, block in m.items()}

    assert metrics(tmp_path / "both") == metrics(tmp_path / "alone")
