import pytest

from govtune.governance import curate
from govtune.governance.synthetic import build_pool

LANGS = ["en", "zh", "hi"]


@pytest.fixture(scope="session")
def pool():
    """Real XNLI/FLORES records with injected wrong-language, duplicate and junk records (`kind`)."""
    return build_pool(LANGS, seed=0)


@pytest.fixture(scope="session")
def curated(pool):
    return curate(pool, LANGS, "c2", progress=False)
