"""`govtune eval --task`, `govtune curate --task` and `govtune export` on a task file; FLORES demonstrations
from dev when the test lines are devtest."""

import argparse
import json
import shutil

from govtune.cli import main

from task_helpers import EXAMPLES


def _example(tmp_path):
    shutil.copytree(EXAMPLES / "intents", tmp_path / "intents")
    return tmp_path / "intents" / "intents.yaml"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_eval_curate_and_export_a_task_file(tmp_path):
    task = _example(tmp_path)
    out = tmp_path / "eval"
    assert main(["eval", "--model", "tiny-llama", "--task", str(task), "--shots", "1", "--no-robustness",
                 "--batch-size", "16", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["languages"]) == {"en", "hi", "zh"} and metrics["run"]["shots_pool"] == "train split"
    split = json.loads((out / "intents.splits.json").read_text())["splits"]
    assert {p["id"] for p in _jsonl(out / "predictions.jsonl")} == set(split["test"])

    cur = tmp_path / "curated"
    assert main(["curate", "--task", str(task), "--stage", "c1", "--shots", "2", "--no-progress",
                 "--out", str(cur)]) == 0
    kept = _jsonl(cur / "kept_rows.jsonl")
    cur_split = json.loads((cur / "intents.splits.json").read_text())["splits"]
    assert cur_split == split  # the same seed carves the same rows
    assert {r["id"] for r in kept} <= set(split["train"]) and "label" in kept[0] and "message" not in kept[0]
    shots = _jsonl(cur / "shots.jsonl")
    for lang in ("en", "hi", "zh"):  # label-balanced: two shots of two different intents per language
        assert len({r["label"] for r in shots if r["lang"] == lang}) == 2

    exp = tmp_path / "export"
    assert main(["export", str(task), "--out", str(exp), "--train", str(cur / "kept_rows.jsonl")]) == 0
    assert [r["id"] for r in _jsonl(exp / "train.jsonl")] == [r["id"] for r in kept]
    assert len(_jsonl(exp / "test.jsonl")) == 27 and (exp / "lm_eval" / "govtune-intents.yaml").exists()


def test_flores_devtest_takes_its_demonstrations_from_dev(tmp_path):
    from govtune.data import DATA_DIR
    from govtune.cli.eval import _test_data, _with_context_and_calibration

    data = tmp_path / "data"
    (data / "flores").mkdir(parents=True)
    for code in ("eng_Latn", "spa_Latn"):
        lines = (DATA_DIR / "flores" / f"{code}.dev").read_text(encoding="utf-8").splitlines()
        (data / "flores" / f"{code}.dev").write_text("\n".join(lines[:600]) + "\n", encoding="utf-8")
        (data / "flores" / f"{code}.devtest").write_text("\n".join(lines[600:640]) + "\n", encoding="utf-8")
    args = argparse.Namespace(task="flores", pairs="en-es", split="devtest", data=str(data), limit=3, shots=3,
                              seed=0, shots_pool=None, calibrate_on=None, langs="en")
    tests, _ = _with_context_and_calibration(args, _test_data(args, default_rows=False))
    dev = (data / "flores" / "eng_Latn.dev").read_text(encoding="utf-8").splitlines()[:500]
    context = tests["en-es"][0]["context"]
    assert sum(line.strip() in context for line in dev) == 3  # three dev pool lines as demonstrations
    assert all(t["src"] not in context for t in tests["en-es"])
