import importlib
import socket
from pathlib import Path

import pytest
import torch

from govtune.data import DATA_DIR
from govtune.models import TINY_BLOOM, TINY_LLAMA, tiny_model


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def bench_script(monkeypatch):
    """Import a script of bench/ by module name (bench/ is a folder of scripts, not a package)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    return importlib.import_module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port():
    """free_port() -> a free TCP port for a multi-process launch (other test runs on this machine may hold
    the default 29500)."""
    return _free_port


@pytest.fixture
def single_thread():
    """One torch thread for the test: small ops whose cost is OpenMP start-up on a busy machine, and runs
    compared for exact equality."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_llama():
    return tiny_model(TINY_LLAMA)


@pytest.fixture
def tiny_bloom():
    return tiny_model(TINY_BLOOM)


@pytest.fixture
def data_dir():
    return DATA_DIR


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (mostly English). Only for tests marked slow."""
    from govtune.models import SMOLLM2, load_model

    return load_model(SMOLLM2)


@pytest.fixture(scope="session")
def gemma3():
    """Gemma 3 270M (multilingual base model). Only for tests marked slow."""
    from govtune.models import GEMMA3, load_model

    return load_model(GEMMA3)
