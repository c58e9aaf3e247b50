import pytest

from govtune.study.loading import build_config


def tiny_study(**overrides):
    """A study on the tiny random model small enough for the default suite: raw pool (C0) of 60 rows,
    4 evaluation examples per language, one epoch."""
    raw = dict(name="tiny", model="tiny-llama", methods=["lora", "hybrid"], seeds=[0, 1], shots=[8],
               curation=["c0"], tasks=["xnli"], xnli_pool_rows=[0, 60], eval_limit=4, val_per_language=2,
               epochs=1, batch_size=8, max_length=128, eval_batch_size=16, calibration_batches=1,
               adapter={"r": 4, "alpha": 8, "ga_batches": 1})
    raw.update(overrides)
    return build_config(raw)


@pytest.fixture(scope="session")
def study():
    return tiny_study
