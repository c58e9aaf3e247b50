"""Task files and rows for the tests of govtune.tasks."""

import json
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_task(tmp_path: Path, rows: list[dict] | None, filename: str = "task.yaml", data: str = "rows.jsonl",
               **spec) -> Path:
    """A task file in tmp_path (and its JSONL data when rows are given)."""
    if rows is not None:
        (tmp_path / data).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        spec.setdefault("data_files", data)
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def intent_rows(per_label: int = 4, langs=("en", "es")) -> list[dict]:
    """Distinct customer messages in the user's own field names."""
    words = {"billing": "charge", "delivery": "parcel", "account": "password"}
    return [{"msg": f"question {i} about my {w} ({lang})", "intent": lab, "locale": lang, "ticket": f"{lang}-{lab}-{i}"}
            for lang in langs for lab, w in words.items() for i in range(per_label)]


INTENT_SPEC = dict(type="classification", name="intents", labels=["billing", "delivery", "account"],
                   columns={"text": "msg", "label": "intent", "lang": "locale", "id": "ticket"},
                   test_size=3, val_size=3, seed=0)


