"""Each task type end to end through `run_study` on the tiny model: curated, tuned, evaluated per language,
recorded, reported and exported; a task file beside XNLI; the lm-eval export scores as govtune does."""

import json
import shutil

import pytest
import torch

from govtune.models import tiny_model
from govtune.study.grid import run_study
from govtune.study.loading import build_config
from govtune.tasks.registry import load_task

from task_helpers import EXAMPLES, write_task

SMALL = dict(model="tiny-llama", methods=["lora"], seeds=[0], shots=[0, 4], curation=["c0"], epochs=1,
             batch_size=8, max_length=128, eval_batch_size=16, val_per_language=2, max_new_tokens=8,
             robustness=False, adapter={"r": 4, "alpha": 8})


def _study(tmp_path, tasks, **kw):
    out = tmp_path / "out"
    run_study(build_config({**SMALL, "name": "t", "tasks": tasks, **kw}), out, progress=False)
    results = json.loads((out / "results.json").read_text())
    return out, results


def _copy_example(tmp_path, name):
    shutil.copytree(EXAMPLES / name, tmp_path / name)
    return tmp_path / name


def test_classification_task_end_to_end(tmp_path):
    task = _copy_example(tmp_path, "intents") / "intents.yaml"
    out, results = _study(tmp_path, [str(task)], curation=["c1"])
    lora = next(r for r in results if r["method"] == "lora")
    m = lora["metrics"]
    assert lora["task"] == "intents" and set(m["languages"]) == {"en", "hi", "zh"}
    assert all(v["n"] == 9 for v in m["languages"].values())
    acc = [v["accuracy"] for v in m["languages"].values()]
    assert m["macro"] == pytest.approx(sum(acc) / 3) and m["parity_gap"] == pytest.approx(max(acc) - min(acc))
    preds = [json.loads(line) for line in (out / "runs" / "lora-k4-c1-s0" / "predictions" / "intents.jsonl")
             .read_text().splitlines()]
    en = [p for p in preds if p["language"] == "en"]
    assert m["languages"]["en"]["accuracy"] == pytest.approx(100 * sum(p["correct"] for p in en) / len(en))
    assert set(en[0]["probs"]) == {"billing", "delivery", "account"} and "probs_ts" in en[0]
    assert lora["ci95"]["macro"][0] <= m["macro"] <= lora["ci95"]["macro"][1]
    report = (out / "report.md").read_text()
    assert "### Task `intents` (classification)" in report and "| LoRA |" in report
    assert "#### Task `intents` (classification)" in report and "| LoRA − Base (no tuning) |" in report
    assert "| intents:c1 | C1 | en | 18 | " in report  # what curation did to the task's pool (30 - 9 - 3 rows)
    # without XNLI, the scaling table and figures follow the study's classification task
    base = next(r for r in results if r["method"] == "base")["metrics"]["macro"]
    scaling = report.split("### Few-shot scaling (`intents` Macro accuracy, curation C1)")[1].split("###")[0]
    assert f"| LoRA | {base:.1f} [" in scaling and f"| {m['macro']:.1f} [" in scaling
    gain = next(line for line in scaling.splitlines() if line.startswith("| LoRA − Base |"))  # paired, per budget
    low, high = (float(x) for x in gain.split("[")[1].split("]")[0].split(", "))
    assert gain.startswith(f"| LoRA − Base | {m['macro'] - base:+.1f} [") and low <= m["macro"] - base <= high
    assert (out / "figures" / "scaling.png").is_file() and (out / "figures" / "frontier.png").is_file()
    # the pool was curated against the task's own test rows, and exported as curated
    kept = [json.loads(line) for line in (out / "curation" / "intents" / "c1.jsonl").read_text().splitlines()]
    trl = [json.loads(line) for line in (out / "export" / "intents" / "c1" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in trl] == [r["id"] for r in kept] and {"prompt", "completion", "label"} <= set(trl[0])
    # the adapter's model card names a task file's data by the task (no hub dataset) and loads on the hub's reader
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "runs" / "lora-k4-c1-s0" / "adapter" / "README.md")
    accuracy = {r.dataset_config: r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy"}
    assert accuracy == {lang: v["accuracy"] for lang, v in m["languages"].items()}
    assert {r.dataset_type for r in card.data.eval_results} == {"intents"}


def test_completion_task_end_to_end(tmp_path):
    task = _copy_example(tmp_path, "capitals") / "capitals.yaml"
    out, results = _study(tmp_path, [str(task)])
    lora = next(r for r in results if r["method"] == "lora")
    m = lora["metrics"]
    assert set(m["languages"]) == {"en", "es"} and lora["metrics"]["languages"]["es"]["n"] == 8
    assert m["languages"]["es"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    preds = [json.loads(line) for line in (out / "runs" / "lora-k4-c0-s0" / "predictions" / "capitals.jsonl")
             .read_text().splitlines()]
    es = [p for p in preds if p["language"] == "es"]
    assert m["languages"]["es"]["exact_match"] == pytest.approx(100 * sum(p["exact"] for p in es) / len(es))
    assert all("\n" not in p["hypothesis"] for p in preds)  # FLORES's stop rule: one line
    assert "### Task `capitals` (completion)" in (out / "report.md").read_text()


def test_chat_task_loss_on_assistant_turns_and_end_to_end(tmp_path):
    rows = [{"conv": [{"role": "user", "content": f"Order {lang}-{i} status?"},
                      {"role": "assistant", "content": f"Order {i} ships today."},
                      {"role": "user", "content": "Thanks, and the invoice?"},
                      {"role": "assistant", "content": f"Invoice {i} is in your email."}], "lang": lang,
             "id": f"{lang}{i}"} for lang in ("en", "de") for i in range(8)]
    path = write_task(tmp_path, rows, type="chat", name="support", columns={"messages": "conv"}, test_size=2)
    task = load_task(str(path))
    task.prepare(build_config({**SMALL, "tasks": [str(path)]}).task_settings(), None)
    pairs = task.training_pairs(task.splits["train"][0])
    # one pair per assistant turn, each target that turn alone: the loss falls on assistant text only
    conv = task.splits["train"][0]["messages"]
    assert [t.strip() for _, t in pairs] == [conv[1]["content"], conv[3]["content"]]
    assert pairs[0][0].endswith("assistant:") and conv[2]["content"] in pairs[1][0]
    _, tok = tiny_model()
    from govtune.text.encoding import IGNORE_INDEX, encode_training_pair

    enc = encode_training_pair(tok, *pairs[1], max_length=512)
    labelled = tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])
    assert labelled.strip() == conv[3]["content"]
    out, results = _study(tmp_path, [str(path)])
    lora = next(r for r in results if r["method"] == "lora")
    assert set(lora["metrics"]["languages"]) == {"en", "de"} and lora["metrics"]["languages"]["de"]["n"] == 2


def test_a_task_file_beside_xnli_mixes_the_training_pairs(tmp_path):
    task = _copy_example(tmp_path, "intents") / "intents.yaml"
    out, results = _study(tmp_path, ["xnli", str(task)], xnli_pool_rows=[0, 30], eval_limit=2, shots=[4])
    run = json.loads((out / "runs" / "lora-k4-c0-s0" / "result.json").read_text())
    assert run["data"] == {"xnli_train": 12, "xnli_val": 6, "intents_train": 12, "intents_val": 9}
    assert list(run["metrics"]) == ["xnli", "intents"]
    report = (out / "report.md").read_text()
    assert "### Task `intents` (classification)" in report and "XNLI" in report


def test_lm_eval_on_the_exported_yaml_gives_govtune_accuracy(tmp_path, single_thread):
    pytest.importorskip("lm_eval")
    from govtune.evaluation.lm_eval_harness import evaluate_lm_eval, summarize, task_manager
    from govtune.tasks.export import export_task, lm_eval_name

    path = _copy_example(tmp_path, "intents") / "intents.yaml"
    task = load_task(str(path)).prepare(build_config({**SMALL, "tasks": [str(path)]}).task_settings(), tmp_path)
    yaml_path = export_task(task, tmp_path / "export")
    model, tok = tiny_model()
    with torch.no_grad():
        _, preds = task.evaluate(model, tok, task.test_sets(), seed=0, progress=False)
    ours = sum(p["correct"] for p in preds) / len(preds)
    manager = task_manager([lm_eval_name(task)], tmp_path / "lm_tasks", [yaml_path.parent])
    results = evaluate_lm_eval(model, tok, [lm_eval_name(task)], manager, batch_size=8)
    row = summarize(results)[lm_eval_name(task)]
    assert row["n"] == len(preds) == 27
    assert row["acc"] == pytest.approx(ours, abs=1e-9)


def test_a_language_outside_govtunes_tables_is_scored_with_robustness(tmp_path, settings):
    from task_helpers import INTENT_SPEC, intent_rows

    path = write_task(tmp_path, intent_rows(langs=("tl", "en")), **INTENT_SPEC)
    settings.robustness = True
    task = load_task(str(path)).prepare(settings, tmp_path)
    model, tok = tiny_model()
    with torch.no_grad():
        m, preds = task.evaluate(model, tok, task.test_sets(), seed=0, progress=False)
    assert set(m["languages"]) == {"en", "tl"} and set(m["robustness"]["by_language"]) == {"en", "tl"}
    assert {p["perturbation"] for p in preds if p["language"] == "tl"} <= {None, "punctuation", "whitespace"}
