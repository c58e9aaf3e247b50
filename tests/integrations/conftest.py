import pytest
import torch
from accelerate.state import AcceleratorState


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dominated by threading overhead; one thread also keeps the compared runs' kernels
    identical."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """A Trainer sets accelerate's process-wide state (TRL's default: bf16); later tests building an
    Accelerator with other settings would be refused. Cleared after each test, as accelerate's own test
    case does."""
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
