"""`govtune lm-eval`: lm-evaluation-harness on the in-memory adapted model gives what lm-eval itself gives on
the merged checkpoint; the local govtune-xnli task is govtune's XNLI prompt, rows and scoring."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("lm_eval")

from govtune.adapters import AdapterConfig, adapter_layers, inject, merge_and_unload, save_adapter  # noqa: E402
from govtune.cli import main  # noqa: E402
from govtune.data import XNLI_EVAL_ROWS, XNLI_POOL_ROWS  # noqa: E402
from govtune.data.xnli import LABELS  # noqa: E402
from govtune.evaluation import evaluate_xnli  # noqa: E402
from govtune.evaluation.lm_eval_harness import evaluate_lm_eval, summarize, task_manager  # noqa: E402
from govtune.models import tiny_model  # noqa: E402
from govtune.tasks import load_xnli  # noqa: E402

LIMIT = 12


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A LoRA adapter moved well away from its zero init, saved alone and as a merged checkpoint."""
    tmp = tmp_path_factory.mktemp("adapted")
    model, tok = tiny_model("tiny-llama")
    inject(model, AdapterConfig(method="lora", r=4, alpha=8))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name, p in layer.named_parameters():
                if not name.startswith("base_layer."):
                    p.add_(0.5 * torch.randn(p.shape, generator=g))
    save_adapter(model, tmp / "adapter")
    merge_and_unload(model)
    model.save_pretrained(tmp / "merged")
    tok.save_pretrained(tmp / "merged")
    return tmp


def _govtune(tmp_path, *argv) -> dict:
    assert main(["lm-eval", "--tasks", "govtune-xnli", "--limit", str(LIMIT), "--batch-size", "4",
                 "--out", str(tmp_path), *argv]) == 0
    return json.loads((tmp_path / "results.json").read_text())


def test_adapted_in_memory_equals_lm_eval_on_the_merged_checkpoint(adapted, tmp_path):
    ours = _govtune(tmp_path / "ours", "--model", "tiny-llama", "--adapter", str(adapted / "adapter"))
    # lm-eval's own command line on the merged checkpoint, with the task directory govtune rendered
    ref_dir = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "lm_eval", "run", "--model", "hf",
                    "--model_args", f"pretrained={adapted / 'merged'}", "--device", "cpu",
                    "--include_path", str(tmp_path / "ours" / "tasks"), "--tasks", "govtune-xnli",
                    "--limit", str(LIMIT), "--batch_size", "4", "--output_path", str(ref_dir)],
                   check=True, capture_output=True)
    ref = json.loads(next(ref_dir.rglob("results_*.json")).read_text())
    assert set(ours["results"]) == set(ref["results"]) == {"govtune-xnli", "govtune-xnli-en", "govtune-xnli-zh",
                                                           "govtune-xnli-hi"}
    for task, entry in ref["results"].items():
        numbers = {k: v for k, v in entry.items() if "," in k and isinstance(v, float)}
        assert len(numbers) == 4  # acc, acc_norm and their stderrs
        for key, value in numbers.items():
            assert ours["results"][task][key] == pytest.approx(value, abs=1e-12), (task, key)
    assert ours["n-samples"]["govtune-xnli-en"] == {"original": len(XNLI_EVAL_ROWS), "effective": LIMIT}

    # the adapter is really applied: the base model scores differently on the same examples
    base = _govtune(tmp_path / "base", "--model", "tiny-llama")
    differs = [(t, k) for t, entry in ours["results"].items() for k, v in entry.items()
               if k.startswith("acc") and base["results"][t][k] != v]
    assert differs


def test_cli_writes_results_report_and_tasks(tmp_path, capsys):
    out = tmp_path / "run"
    results = _govtune(out, "--model", "tiny-llama", "--num-fewshot", "1")
    printed = capsys.readouterr().out
    assert not list(out.rglob(".*"))  # atomic writes leave no temporary files
    assert sorted(p.name for p in (out / "tasks").iterdir()) == [
        "govtune-xnli-en.yaml", "govtune-xnli-hi.yaml", "govtune-xnli-val-en.yaml", "govtune-xnli-val-hi.yaml",
        "govtune-xnli-val-zh.yaml", "govtune-xnli-val.yaml", "govtune-xnli-zh.yaml", "govtune-xnli.yaml"]
    assert all(results["n-shot"][t] == 1 for t in ("govtune-xnli-en", "govtune-xnli-zh", "govtune-xnli-hi"))
    summary = summarize(results)
    subtasks = ["govtune-xnli-en", "govtune-xnli-zh", "govtune-xnli-hi"]
    for t in subtasks:
        row = summary[t]
        assert row["n"] == LIMIT and set(row) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n"}
        k = round(row["acc"] * LIMIT)  # acc is a count over LIMIT examples; stderr is the sample sd / sqrt(n)
        assert row["acc"] == pytest.approx(k / LIMIT)
        p = k / LIMIT
        assert row["acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) * LIMIT / (LIMIT - 1) / LIMIT))
    # the group is the Macro: the unweighted mean of the languages
    assert summary["govtune-xnli"]["acc"] == pytest.approx(sum(summary[t]["acc"] for t in subtasks) / 3)
    report = (out / "report.md").read_text()
    for t in subtasks:
        assert f"| {t} | acc | {summary[t]['acc']:.4f} | {summary[t]['acc_stderr']:.4f} | {LIMIT} |" in report
    assert "--include_path" in report and f"govtune-xnli: acc {summary['govtune-xnli']['acc']:.4f}" in printed


def test_unknown_task_lists_the_offline_tasks(tmp_path, capsys):
    code = main(["lm-eval", "--model", "tiny-llama", "--tasks", "govtune-xnli-fr,govtune-xnl", "--out",
                 str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown lm-eval tasks 'govtune-xnli-fr', 'govtune-xnl'" in err
    assert ("Available offline: govtune-xnli, govtune-xnli-en, govtune-xnli-hi, govtune-xnli-val, "
            "govtune-xnli-val-en, govtune-xnli-val-hi, govtune-xnli-val-zh, govtune-xnli-zh") in err
    assert "--include-path" in err and not (tmp_path / "results.json").exists()


def test_include_path_adds_a_task(tmp_path):
    extra = tmp_path / "mine"
    extra.mkdir()
    en = (tmp_path / "gen" / "govtune-xnli-en.yaml")
    task_manager(["govtune-xnli"], tmp_path / "gen")
    (extra / "mine.yaml").write_text(en.read_text().replace("task: govtune-xnli-en", "task: my-xnli"))
    assert "my-xnli" in task_manager(["my-xnli"], tmp_path / "gen", [extra]).all_tasks


def test_task_rows_and_few_shot_pool(tmp_path):
    """Test docs are the evaluation rows in file order, few-shot examples come from the pool rows only."""
    manager = task_manager(["govtune-xnli-zh"], tmp_path)
    task = manager.load(["govtune-xnli-zh"])["tasks"]["govtune-xnli-zh"]
    test = list(task.test_docs())
    gold = load_xnli("zh", rows=XNLI_EVAL_ROWS)
    assert len(test) == len(gold)
    for doc, ex in zip(test[:50], gold[:50]):
        assert (doc["premise"], doc["hypothesis"], LABELS[doc["gold"]]) == (ex["premise"], ex["hypothesis"],
                                                                          ex["label"])
    pool = {(d["premise"], d["hypothesis"]) for d in task.fewshot_docs()}
    assert len(task.fewshot_docs()) == len(XNLI_POOL_ROWS)
    assert not pool & {(d["premise"], d["hypothesis"]) for d in test}


def test_govtune_xnli_scores_what_govtune_eval_scores(tmp_path):
    """The rendered task is govtune's XNLI prompt and continuations: lm-eval's log-likelihoods, normalised
    over the three labels, equal govtune's class probabilities (no EOS appended: ByT5 would add one)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    model, tok = tiny_model("tiny-llama")
    langs = ["en", "zh"]  # Hindi prompts exceed the tiny model's 512 positions: the two truncate differently
    manager = task_manager([f"govtune-xnli-{lang}" for lang in langs], tmp_path)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=4, add_bos_token=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=[f"govtune-xnli-{lang}" for lang in langs], limit=6,
                                  task_manager=manager, log_samples=True)
    for lang in langs:
        samples = sorted(out["samples"][f"govtune-xnli-{lang}"], key=lambda s: s["doc_id"])
        lls = torch.tensor([[r[0] for r in s["filtered_resps"]] for s in samples], dtype=torch.float64)
        theirs = (lls - lls.logsumexp(1, keepdim=True)).exp()
        _, preds = evaluate_xnli(model, tok, {lang: load_xnli(lang, rows=XNLI_EVAL_ROWS, limit=6)}, batch_size=3,
                                 robustness=False, progress=False)
        ours = torch.tensor([[p["probs"][label] for label in LABELS] for p in preds], dtype=torch.float64)
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    # and through govtune's wrapper, with the same HFLM argument
    results = evaluate_lm_eval(model, tok, ["govtune-xnli-en"], manager, limit=6, model_args={"add_bos_token": False})
    assert results["results"]["govtune-xnli-en"]["acc,none"] == out["results"]["govtune-xnli-en"]["acc,none"]


def test_hub_task_offline_says_what_to_do(tmp_path, capsys, monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying the network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code = main(["lm-eval", "--model", "tiny-llama", "--tasks", "xnli_en", "--limit", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot download" in err and "facebook/xnli" in err and "govtune-xnli" in err
    assert not (tmp_path / "results.json").exists()


def test_lm_eval_quantize_records_the_scheme_and_refuses_one_this_machine_cannot_run(tmp_path, capsys):
    got = _govtune(tmp_path / "q", "--model", "tiny-llama", "--quantize", "nf4")
    assert got["config"]["quantize"] == "nf4"
    if not torch.cuda.is_available():
        assert main(["lm-eval", "--tasks", "govtune-xnli", "--model", "tiny-llama", "--quantize", "int4",
                     "--out", str(tmp_path / "q4")]) != 0
        assert "'int8' or 'nf4'" in capsys.readouterr().err
