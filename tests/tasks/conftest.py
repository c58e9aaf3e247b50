import pytest


@pytest.fixture
def settings():
    from govtune.tasks.settings import TaskSettings

    return TaskSettings(eval_limit=None, val_per_language=2, robustness=False, eval_batch_size=16,
                        max_new_tokens=8, data_dir=None)
