"""Where a benchmark's numbers go: OUT/<stem>.json (what it measured, with the run's settings) and
OUT/<stem>.md (the table a reader opens), both written atomically, the table also printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govtune.atomic import atomic_write_text  # noqa: E402


def write_results(out_dir: str | Path, stem: str, payload: dict, markdown: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{stem}.json", json.dumps(payload, indent=2, ensure_ascii=False))
    atomic_write_text(out / f"{stem}.md", markdown)
    print(markdown)
