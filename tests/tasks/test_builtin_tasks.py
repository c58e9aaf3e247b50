"""XNLI and FLORES through the Task interface give what the evaluators and the study's sampling gave before
tasks existed: the same training pairs and the same metrics and predictions on the same model."""

import random

import pytest
import torch

from govtune.evaluation import evaluate_flores, evaluate_xnli
from govtune.governance import sample_kshot
from govtune.models import tiny_model
from govtune.results.layout import StudyLayout
from govtune.study.data import StudyData, curate_study
from govtune.study.loading import build_config
from govtune.tasks import flores_training_pair, load_flores, load_xnli, xnli_training_pair

CONFIG = dict(name="t", model="tiny-llama", methods=["lora"], seeds=[0], shots=[4], curation=["c0"],
              tasks=["xnli", "flores"], xnli_pool_rows=[0, 30], eval_limit=3, flores_eval_limit=2,
              flores_train_pairs=3, val_per_language=2, max_new_tokens=6, eval_batch_size=8, robustness=True)


@pytest.fixture
def data(tmp_path):
    config = build_config(CONFIG)
    data = StudyData(config, StudyLayout(tmp_path), progress=False)
    curate_study(data, ["c0"], lambda: (None, None))
    return data


def test_training_pairs_are_the_old_sampling(data):
    c = data.config
    kept = data.curated("c0")
    train = sample_kshot(kept, c.languages, k=4, seed=0)
    key = lambda r: (r.get("lang"), r.get("id"), r.get("premise"), r.get("hypothesis"))  # noqa: E731
    taken, rng, val = {key(r) for r in train}, random.Random("val-0"), []
    for lang in c.languages:
        val += rng.sample([r for r in kept if r["lang"] == lang and key(r) not in taken], 2)
    rng = random.Random("flores-0")
    flores = [r for p in c.flores_pairs
              for r in rng.sample(load_flores(*p.split("-"), lines=range(*c.flores_pool_lines)), 3)]
    pairs, val_pairs, counts = data.training_pairs("c0", 4, 0)
    assert pairs == [xnli_training_pair(r) for r in train] + [flores_training_pair(r) for r in flores]
    assert val_pairs == [xnli_training_pair(r) for r in val]
    assert counts == {"xnli_train": 12, "xnli_val": 6, "flores_train.en-zh": 3, "flores_train.en-es": 3}


def test_evaluation_is_the_old_evaluators(data, single_thread):
    model, tok = tiny_model()
    c = data.config
    tests = {lang: load_xnli(lang, rows=range(*c.xnli_eval_rows), limit=3) for lang in c.languages}
    val = data.validation_examples("c0", 4, 0, "xnli")
    with torch.no_grad():
        new_m, new_p = data.tasks["xnli"].evaluate(model, tok, data.test_sets("xnli"), seed=0, progress=False,
                                                   calibration=val)
        old_m, old_p = evaluate_xnli(model, tok, tests, batch_size=8, robustness=True, seed=0, progress=False,
                                     calibration=val)
        new_f, new_fp = data.tasks["flores"].evaluate(model, tok, data.test_sets("flores"), seed=0, progress=False)
        old_f, old_fp = evaluate_flores(model, tok, {p: load_flores(*p.split("-"), lines=range(*c.flores_eval_lines),
                                                                    limit=2) for p in c.flores_pairs},
                                        batch_size=8, max_new_tokens=6, progress=False)
    for m in (new_m, old_m, new_f, old_f):
        m.pop("timing")
    assert new_m == old_m and new_p == old_p
    assert new_f == old_f and new_fp == old_fp
