"""The bf16 scoring benchmark runs end to end on a tiny model: the bf16 path really computes in bf16 (its
probabilities move, by bf16's rounding and no more), and the tables hold what the json holds."""

import json

import numpy as np


def test_bf16_scoring_bench_on_tiny_llama(bench_script, tmp_path):
    bench = bench_script("bf16_scoring")
    result = bench.main(["--model", "tiny-llama", "--per-lang", "4", "--batch-size", "4", "--threads", "1",
                         "--out-dir", str(tmp_path)])
    assert set(result["seconds_per_language"]["bf16"]) == {"warm-up", "en", "zh", "hi"}
    # bf16 keeps 8 bits of mantissa: log-likelihoods of tens of tokens move the probabilities a little
    assert 0 < result["max_abs_prob_diff"] < 0.2
    for p in result["per_language"].values():
        assert 0 <= p["accuracy_float32"] <= 100 and 0 <= p["ece_bf16"] <= 100
        changed = p["predictions_changed"]
        assert changed == 0 or abs(p["accuracy_float32"] - p["accuracy_bf16"]) <= 100 * changed / 4
    saved = json.loads((tmp_path / "bf16_scoring.json").read_text())
    assert saved["meta"]["examples"] == 12 and np.isclose(saved["result"]["speedup"], result["speedup"])
    md = (tmp_path / "bf16_scoring.md").read_text()
    assert f"predicted labels changed: {result['predictions_changed']} of 12" in md
