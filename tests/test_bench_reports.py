"""Benchmarks record the machine's load as measured during the run, never a fixed sentence about it."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(bench_script):
    return bench_script


def test_curation_report_states_the_measured_load(bench, tmp_path):
    curation = bench("curation")
    res = json.loads((ROOT / "bench" / "results" / "curation.json").read_text())
    res["machine_load"] = {"cpu_count": 4, "load_average_start": [1.25, 1.0, 0.5],
                           "load_average_end": [3.5, 2.0, 1.0]}
    curation.write_results(res, str(tmp_path / "curation"))
    md = (tmp_path / "curation.md").read_text()
    assert "(99597 records, 4 CPUs)" in md
    assert "1.25 / 1.00 / 0.50 at the start and 3.50 / 2.00 / 1.00 at the end, on 4 CPUs." in md
    assert "load 6-9" not in md and "shared with other jobs" not in md
    assert "| 99597 | 93.11 | 1070 | 546 | 79271 |" in md  # the measured rows, unchanged
    assert json.loads((tmp_path / "curation.json").read_text())["machine_load"] == res["machine_load"]


def test_butterfly_report_states_the_measured_load(bench):
    kernel = bench("butterfly_kernel")
    result = json.loads((ROOT / "bench" / "results" / "butterfly_kernel.json").read_text())
    result["machine_load"] = {"cpu_count": 2, "load_average_start": [0.75, 0.5, 0.25],
                              "load_average_end": [2.25, 1.0, 0.5]}
    md = kernel._markdown(result)
    assert "0.75 / 0.50 / 0.25 at the start and 2.25 / 1.00 / 0.50 at the end, on 2 CPUs." in md
    assert "| govtune m=1 | 4.834 |" in md


def test_streaming_curation_report_states_ratio_memory_and_load(bench, tmp_path):
    stream = bench("curation_stream")
    run = {"records": 1000, "kept": 900, "max_process_rss_mb": 200.0}
    res = {"rows": 1000, "kinds": {"clean": 1000},
           "govtune_dedup_quality": {**run, "seconds": 2.0, "records_per_second": 500.0, "peak_tree_rss_mb": 250.0,
                                     "index_mb": 1.5},
           "datatrove_dedup_quality": {**run, "seconds": 20.0, "records_per_second": 50.0, "peak_tree_rss_mb": 500.0},
           "machine_load": {"cpu_count": 2, "load_average_start": [1.5, 1.0, 0.5], "load_average_end": [2.0, 1.0, 0.5]}}
    stream.write_results(res, str(tmp_path / "cs"))
    md = (tmp_path / "cs.md").read_text()
    assert "speed x10.00, peak memory (process tree) x0.50" in md
    assert "| 1000 | 2.0 | 500 | 250 | 200 | 1.5 | 900 |" in md
    assert "1.50 / 1.00 / 0.50 at the start and 2.00 / 1.00 / 0.50 at the end, on 2 CPUs." in md
    assert json.loads((tmp_path / "cs.json").read_text())["speed_ratio_govtune_over_datatrove"] == 10.0
