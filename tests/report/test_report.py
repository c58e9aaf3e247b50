"""The report from a hand-made results store: numbers, statistics and which tables appear."""

import pytest
from scipy.stats import ttest_ind

from govtune.report.document import Study, write_report
from govtune.results.store import load_runs, record_run, record_study, write_results_json

MACRO = {("lora", 0): 40.0, ("lora", 1): 42.0, ("lora", 2): 44.0,
         ("hybrid", 0): 45.0, ("hybrid", 1): 46.0, ("hybrid", 2): 50.0}


def _result(method, seed, stage="c2", shots=32, macro=None):
    macro = MACRO.get((method, seed), 30.0) if macro is None else macro
    xnli = {"task": "xnli", "languages": {"en": {"accuracy": macro + 6, "ece": 5.0, "n": 32},
                                          "zh": {"accuracy": macro, "ece": 6.0, "n": 32},
                                          "hi": {"accuracy": macro - 6, "ece": 7.0, "n": 32}},
            "macro": macro, "parity_gap": 12.0, "avg_ece": 6.0,
            "robustness": {"macro_drop": 1.5, "by_operation": {"punctuation": {"drop": 1.0, "n": 40},
                                                               "none": {"drop": 0.0, "n": 3}}}}
    flores = {"task": "flores", "pairs": {"en-zh": {"bleu": 10.0 + seed, "chrf": 20.0, "n": 8},
                                          "en-es": {"bleu": 20.0, "chrf": 40.0, "n": 8}},
              "average_bleu": 15.0 + seed / 2, "direction_gap": 10.0 - seed}
    return {"run_id": f"{method}-k{shots}-{stage}-s{seed}", "method": method, "seed": seed, "shots": shots,
            "curation": stage, "model": "smollm2-135m-instruct", "metrics": {"xnli": xnli, "flores": flores},
            "footprint": {"peak_memory_mb": 900.0, "step_time_s": 1.0 if method == "lora" else 1.25,
                          "tunable_params_m": 0.9, "memory_kind": "cpu peak RSS during training (includes the model)",
                          "train_steps": 12},
            "lam_final": {"model.layers.0.self_attn.q_proj": 0.6} if method == "hybrid" else None}


def _store(tmp_path, results):
    record_study(tmp_path, "t", "smollm2-135m-instruct", "0" * 16, {
        "languages": ["en", "zh", "hi"], "flores_pairs": ["en-zh", "en-es"], "xnli_eval_rows": [1245, 2490],
        "xnli_pool_rows": [0, 1245], "epochs": 1, "flores_eval_lines": [500, 997], "flores_eval_limit": 8})
    for r in results:
        curves = {"epoch/val_loss": [(1, 2.0)], "epoch/grad_norm": [(1, 0.5)], "step/loss": [(1, 3.0), (2, 2.5)]}
        if r["lam_final"]:
            curves["lam/model.layers.0.self_attn.q_proj"] = [(1, 0.5), (2, 0.6)]
        record_run(tmp_path, r, curves)
    write_results_json(tmp_path, results)


def test_main_table_mean_sd_and_welch_p_against_lora(tmp_path):
    _store(tmp_path, [_result(m, s) for m in ("lora", "hybrid") for s in (0, 1, 2)])
    report = write_report(tmp_path).read_text()
    p = ttest_ind([45, 46, 50], [40, 42, 44], equal_var=False).pvalue
    assert f"| Hybrid | 53.0 ± 2.6 | 47.0 ± 2.6 | 41.0 ± 2.6 | 47.0 ± 2.6 | 12.0 ± 0.0 | 6.0 ± 0.0 | {p:.3f} |" in report
    assert "| LoRA | 48.0 ± 2.0 | 42.0 ± 2.0 | 36.0 ± 2.0 | 42.0 ± 2.0 |" in report
    assert "mostly on English" in report and "3 seed(s) [0, 1, 2]" in report
    assert "EN→ZH BLEU" in report and "| +25% |" in report  # hybrid step time vs LoRA
    robustness = report.split("orthographic variants")[1].split("###")[0]
    header = next(line for line in robustness.splitlines() if line.startswith("| Method"))
    assert "punctuation" in header and "none" not in header  # unperturbed examples are no operation
    assert "| Hybrid | 1.5 ± 0.0 | 1.0 ± 0.0 |" in robustness
    assert "Data curation ablation" not in report and "Few-shot scaling" not in report
    assert "| Hybrid | 1 | 0.600 | 0.600 | 0.600 |" in report
    assert (tmp_path / "figures" / "lam.png").exists() and (tmp_path / "figures" / "frontier.png").exists()


def test_curation_and_scaling_tables_appear_only_when_run(tmp_path):
    results = [_result("hybrid", 0, stage=st, macro=m) for st, m in (("c0", 40.0), ("c1", 41.0), ("c2", 43.0))]
    results += [_result("hybrid", 0, shots=8, macro=35.0)]
    results += [dict(_result("base", 0, stage="none", shots=0, macro=33.0), run_id="base-k0-none-s0")]
    _store(tmp_path, results)
    report = write_report(tmp_path).read_text()
    assert "Data curation ablation" in report and "| Hybrid | C0 | 40.0 |" in report
    assert "| Hybrid | C2 | 43.0 |" in report
    assert "Few-shot scaling" in report and "| Hybrid | 33.0 | 35.0 | 43.0 |" in report
    assert "One seed: no standard deviation" in report and "p = n/a" in report
    assert (tmp_path / "figures" / "scaling.png").exists()


def test_footprint_section_sums_the_wall_time_and_gives_the_load_range(tmp_path):
    results = []
    for seed, (wall, start, end) in enumerate([(3000.0, 1.9, 2.1), (2000.5, 2.0, 3.4), (1900.0, 0.4, 2.0)]):
        r = _result("lora", seed)
        r["footprint"].update(wall_time_s=wall, cpu_count=2, load_1min_start=start, load_1min_end=end)
        results.append(r)
    _store(tmp_path, results)
    report = write_report(tmp_path).read_text()
    # 6,900.5 s = 1 h 55 min; the longest run 50.0 min; loads 0.4 .. 3.4 on 2 CPUs: some waited for a core
    assert "Wall time: 1 h 55 min for 3 run(s), curation aside; the longest 50.0 min (lora-k32-c2-s0)." in report
    assert "each run: 0.40 to 3.40, on 2 CPUs: above that, processes waited for a core" in report


def test_store_round_trip_and_replacing_a_run(tmp_path):
    _store(tmp_path, [_result("lora", 0)])
    again = _result("lora", 0, macro=99.0)
    record_run(tmp_path, again, {})
    runs = load_runs(tmp_path)
    assert len(runs) == 1 and runs[0]["metrics"]["xnli"]["macro"] == 99.0
    assert runs[0]["metrics"]["flores"]["pairs.en-zh.bleu"] == 10.0
    assert runs[0]["metrics"]["footprint"]["step_time_s"] == 1.0
    study = Study(tmp_path)
    assert study.main_shots == 32 and study.main_stage == "c2" and study.methods == ["lora"]


def test_report_without_results_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="govtune run"):
        write_report(tmp_path)


def test_calibration_table_ece_before_and_after_per_method(tmp_path):
    results = []
    for method, after in (("lora", (2.0, 3.0, 4.0)), ("hybrid", (1.0, 1.5, 2.0))):
        for seed in (0, 1):
            r = _result(method, seed)
            xnli = r["metrics"]["xnli"]
            for (lang, v), ece_ts, t in zip(xnli["languages"].items(), after, (1.5, 2.0 + seed, 0.5)):
                v.update(ece_ts=ece_ts + seed, temperature=t, calibration_n=8)
            xnli["avg_ece_ts"] = sum(after) / 3 + seed
            results.append(r)
    results.append(_result("boft", 0))  # an older run without calibration: no row
    _store(tmp_path, results)
    report = write_report(tmp_path).read_text()
    section = report.split("### Calibration")[1].split("###")[0]
    assert "8 validation examples per language" in section
    assert ("| LoRA | 6.0 ± 0.0 | 3.5 ± 0.7 | 5.0 ± 0.0 → 2.5 ± 0.7 | 6.0 ± 0.0 → 3.5 ± 0.7 | 7.0 ± 0.0 → 4.5 ± 0.7 "
            "| 1.50 / 2.50 / 0.50 |") in section
    assert "| Hybrid | 6.0 ± 0.0 | 2.0 ± 0.7 | 5.0 ± 0.0 → 1.5 ± 0.7 |" in section and "BOFT" not in section


def test_no_calibration_section_without_temperatures(tmp_path):
    _store(tmp_path, [_result("lora", 0)])
    assert "### Calibration" not in write_report(tmp_path).read_text()
