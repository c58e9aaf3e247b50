"""The in-context shared-prefix benchmark runs end to end on a tiny model and finds both paths equal."""

import json


def test_incontext_shared_prefix_bench_on_tiny_bloom(bench_script, tmp_path):
    bench = bench_script("incontext_shared_prefix")
    result = bench.main(["--model", "tiny-bloom", "--per-lang", "3", "--shots", "1", "--batch-size", "3",
                         "--out-dir", str(tmp_path)])
    assert result["max_abs_loglik_diff"] < 1e-4 and result["predictions_changed"] == 0
    assert set(result["seconds_per_language"]["shared"]) == {"warm-up", "en", "zh", "hi"}
    saved = json.loads((tmp_path / "incontext_shared_prefix.json").read_text())
    assert saved["meta"]["examples"] == 9 and saved["result"]["speedup"] == result["speedup"]
    assert "predicted labels changed: 0 of 9" in (tmp_path / "incontext_shared_prefix.md").read_text()
