"""How busy the machine was during a benchmark or a study's run, measured rather than claimed: the CPU count
and the load average (os.getloadavg: runnable processes averaged over 1, 5 and 15 minutes) when it started and
when it ended. Every benchmark stores `MachineLoad.result()` under "machine_load" and prints `describe` in its
report; a study's run records `load_1min()` at its start and end in its footprint.

The load average counts the benchmark's own processes too, so a run that keeps n cores busy shows about n
even on an idle machine; a load above the CPU count means processes waited for a core.
"""

from __future__ import annotations

import os


class MachineLoad:
    """Start measuring at construction; `result()` takes the end sample (once) and returns both."""

    def __init__(self) -> None:
        self.cpu_count = os.cpu_count()
        self.start = _sample()
        self.end: list[float] | None = None

    def result(self) -> dict:
        if self.end is None:
            self.end = _sample()
        return {"cpu_count": self.cpu_count, "load_average_start": self.start, "load_average_end": self.end}


def _sample() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def load_1min() -> float | None:
    """The 1-minute load average, None where the OS has none (os.getloadavg is Unix-only)."""
    try:
        return _sample()[0]
    except (AttributeError, OSError):
        return None


def describe(machine: dict) -> str:
    """One sentence for a Markdown report, from a `MachineLoad.result()`."""
    start, end = machine["load_average_start"], machine["load_average_end"]
    return (f"Load average (1 / 5 / 15 min, the benchmark's own processes included) "
            f"{start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} at the start and "
            f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end, on {machine['cpu_count']} CPUs.")
