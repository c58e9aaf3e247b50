import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dominated by threading overhead; one thread also keeps the compared runs' kernels
    identical."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
