import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dominated by threading overhead (10x slower with 2 threads on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
