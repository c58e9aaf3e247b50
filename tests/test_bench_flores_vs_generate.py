"""bench/flores_generation_vs_generate.py: govtune's generator and a `model.generate` loop with the same stop
rule write the same translations (correctness only; the speed is the benchmark's to measure)."""

import json

import pytest

from govtune.models import tiny_model

@pytest.fixture
def bench(bench_script):
    return bench_script("flores_generation_vs_generate")


def test_both_generators_write_the_same_hypotheses(bench, single_thread):
    model, tok = tiny_model("tiny-llama")
    model.eval()
    examples = bench.flores_examples(3, shots=1)
    requests = bench.capture_requests(model, tok, examples, batch_size=2, max_new_tokens=12)
    assert len(requests["prompts"]) == 6 and requests["pairs"] == ["en-zh"] * 3 + ["en-es"] * 3
    assert all(b <= 12 for b in requests["budgets"])
    result = bench.compare(model, tok, requests, repeats=2)
    ours, theirs = result["hypotheses"]["govtune"], result["hypotheses"]["generate"]
    assert any(ours), "a random model still writes something"
    assert ours == theirs and result["identical_hypotheses"] == 6
    assert result["bleu"]["govtune"] == result["bleu"]["generate"]
    assert all(len(s) == 2 for s in result["seconds"].values())


def test_reference_stops_each_row_at_its_own_budget(bench, single_thread):
    model, tok = tiny_model("tiny-llama")
    model.eval()
    prompts = [tok.encode("Translate: a", add_special_tokens=False), tok.encode("b", add_special_tokens=False)]
    kwargs = dict(max_new_tokens=9, batch_size=2, budgets=[2, 9], scripts=["Latn", "Latn"], sentences=[1, 1])
    ours = bench.generate_lines(model, tok, prompts, **kwargs)
    theirs = bench.reference_generate_lines(model, tok, prompts, **kwargs)
    assert ours == theirs
    assert len(tok.encode(theirs[0], add_special_tokens=False)) <= 2


def test_script_writes_both_reports_with_the_measured_load(bench, single_thread, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "load_model", lambda name: tiny_model(name))
    bench.main(["--model", "tiny-llama", "--per-pair", "2", "--shots", "0", "--batch-size", "2",
                "--max-new-tokens", "6", "--repeats", "1", "--threads", "1", "--out-dir", str(tmp_path)])
    data = json.loads((tmp_path / "flores_generation_vs_generate.json").read_text())
    assert data["result"]["examples"] == 4
    assert len(data["meta"]["machine_load"]["load_average_start"]) == 3
    md = (tmp_path / "flores_generation_vs_generate.md").read_text()
    assert "Load average" in md and "identical hypotheses: " in md
