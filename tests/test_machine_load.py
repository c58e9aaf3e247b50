"""The machine's load, as benchmarks and a study's runs record it: sampled, never a fixed sentence."""

import os

from govtune import machine_load


def test_machine_load_samples_start_and_end(monkeypatch):
    samples = iter([(0.5, 0.25, 0.125), (7.0, 6.5, 3.0), (9.0, 9.0, 9.0)])
    monkeypatch.setattr(machine_load.os, "getloadavg", lambda: next(samples))
    load = machine_load.MachineLoad()
    result = load.result()
    assert result == {"cpu_count": os.cpu_count(), "load_average_start": [0.5, 0.25, 0.12],
                      "load_average_end": [7.0, 6.5, 3.0]}
    assert load.result() == result  # the end is sampled once
    assert machine_load.describe(result) == (
        "Load average (1 / 5 / 15 min, the benchmark's own processes included) 0.50 / 0.25 / 0.12 at the start "
        f"and 7.00 / 6.50 / 3.00 at the end, on {os.cpu_count()} CPUs.")


def test_load_1min_reads_the_one_minute_average_and_is_none_without_one(monkeypatch):
    monkeypatch.setattr(machine_load.os, "getloadavg", lambda: (1.234, 5.0, 6.0))
    assert machine_load.load_1min() == 1.23

    def unavailable():
        raise OSError("no load average")
    monkeypatch.setattr(machine_load.os, "getloadavg", unavailable)
    assert machine_load.load_1min() is None
