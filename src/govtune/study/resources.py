"""What one cell of a study may use: `cell_resources: {num_cpus: 1, num_gpus: 0, memory: 6GB}`. The Ray
executor asks Ray for exactly this per cell; under either executor a cell with `num_cpus` runs with that many
torch threads, since float reductions follow the thread count and the same cell must give the same numbers
wherever it runs. Torch-free: the config checks it."""

from __future__ import annotations

import math
import re
from typing import Any

KEYS = ("num_cpus", "num_gpus", "memory")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def parse_memory(value: Any, where: str = "cell_resources.memory") -> int:
    """Bytes from an int or a string such as `6GB`, `512MiB`."""
    if isinstance(value, bool):
        raise ValueError(f"{where} must be bytes or a size such as 6GB, got {value!r}")
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return int(value)
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]i?b?|b)?\s*", str(value).lower())
    if not found:
        raise ValueError(f"{where} must be bytes or a size such as 6GB or 512MiB, got {value!r}")
    unit = found.group(2) or ""
    unit = unit if unit.endswith("b") or unit == "" else unit + "b"
    return int(float(found.group(1)) * _UNITS[unit])


def check_cell_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """The resources, checked and normalised ({num_cpus: float, num_gpus: float, memory: bytes})."""
    if not isinstance(resources, dict):
        raise ValueError(f"cell_resources must map {', '.join(KEYS)} to amounts, e.g. {{num_cpus: 1, memory: 6GB}}; "
                         f"got {resources!r}")
    out: dict[str, Any] = {}
    for key, value in resources.items():
        if key not in KEYS:
            raise ValueError(f"cell_resources: unknown resource {key!r}; the resources are {', '.join(KEYS)}")
        if key == "memory":
            out[key] = parse_memory(value)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"cell_resources.{key} must be a number >= 0, got {value!r}")
        if key == "num_cpus" and value < 1:
            raise ValueError(f"cell_resources.num_cpus must be at least 1 (a cell runs torch on whole threads), "
                             f"got {value!r}")
        out[key] = float(value)
    return out


def cell_threads(resources: dict[str, Any]) -> int | None:
    """torch threads a cell runs with: its num_cpus, or None (torch's own choice) when not given."""
    cpus = resources.get("num_cpus")
    return None if cpus is None else max(1, int(cpus))
