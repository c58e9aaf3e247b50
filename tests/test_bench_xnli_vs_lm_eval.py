"""bench/xnli_scoring_vs_lm_eval.py: govtune's XNLI class probabilities equal lm-evaluation-harness's on the
same examples and prompts (correctness only; the speed is the benchmark's to measure)."""

import json

import numpy as np
import pytest

from govtune.data.xnli import LABELS
from govtune.models import tiny_model

@pytest.fixture
def bench(bench_script):
    return bench_script("xnli_scoring_vs_lm_eval")


def test_govtune_and_lm_eval_give_the_same_class_probabilities(bench, single_thread):
    model, tok = tiny_model("tiny-llama")
    examples = bench.xnli_examples(2)
    assert [ex["lang"] for ex in examples] == ["en", "en", "zh", "zh", "hi", "hi"]
    result = bench.compare(model, tok, examples, batch_size=4, repeats=2, warmup=False)
    ours, theirs = np.array(result["probs"]["govtune"]), np.array(result["probs"]["lm_eval"])
    assert ours.shape == theirs.shape == (6, len(LABELS))
    np.testing.assert_allclose(ours.sum(1), 1.0, atol=1e-12)
    assert np.ptp(ours, axis=1).min() > 1e-3  # real scores, not a uniform fallback
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    assert result["max_abs_prob_diff"] == pytest.approx(np.abs(ours - theirs).max())
    assert result["max_abs_prob_diff"] <= 1e-4 and result["same_prediction"] == 6
    assert result["token_split_differs"] == 0  # byte-level tokenizer: no token crosses the boundary
    assert all(len(s) == 2 for s in result["seconds"].values())
    assert max(result["max_repeat_diff"].values()) < 1e-12  # both tools are deterministic on a repeat


def test_script_writes_both_reports_with_the_measured_load(bench, single_thread, tmp_path):
    result = bench.main(["--model", "tiny-llama", "--per-lang", "1", "--repeats", "1", "--threads", "1",
                         "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "xnli_scoring_vs_lm_eval.json").read_text())
    assert saved["result"]["examples"] == result["examples"] == 3
    assert set(saved["meta"]["machine_load"]) == {"cpu_count", "load_average_start", "load_average_end"}
    md = (tmp_path / "xnli_scoring_vs_lm_eval.md").read_text()
    assert f"govtune / lm-eval = {result['speedup']:.2f}x" in md and "Load average" in md


def test_bad_sizes_are_refused(bench):
    with pytest.raises(ValueError, match="per-lang"):
        bench.xnli_examples(0)
    with pytest.raises(ValueError, match="repeats"):
        bench.compare(None, None, [], repeats=0)
