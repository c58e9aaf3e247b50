"""The CPU footprint's peak starts from what the process holds, not from what earlier work freed."""

import sys
from pathlib import Path

import pytest
import torch

from govtune.training.footprint import FootprintMeter, release_free_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not release_free_memory(),
                    reason="needs Linux /proc and glibc's malloc_trim")
def test_start_hands_back_memory_that_earlier_work_freed():
    # 400 MB in 64 KiB tensors (below glibc's mmap threshold: they come from the heap), every other one kept
    # alive until the end, so the freed half lies between live chunks: free() alone cannot give it back.
    chunks = [torch.ones(16 * 1024) for _ in range(6400)]
    keep = chunks[1::2]
    del chunks
    held = _rss_mb()
    meter = FootprintMeter(torch.device("cpu"))
    meter.start()
    after = _rss_mb()
    assert held - after > 100, (held, after)  # the freed ~200 MB left the resident set
    assert meter.peak_memory_mb()[0] < held - 100  # and the run's peak starts below what the process had held
    assert len(keep) == 3200 and float(keep[-1][0]) == 1.0
