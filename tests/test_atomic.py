import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from govtune.atomic import atomic_write_json, atomic_write_jsonl


def _strict(text: str):
    """json.loads that refuses NaN / Infinity, as strict JSON readers do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_and_jsonl_writers_agree_and_write_strict_json(tmp_path):
    row = {"sd": float("nan"), "p": float("inf"), "n": np.int64(3), "x": np.float32(0.5), "path": Path("a/b"),
           "nested": [1.5, float("-inf"), {"k": float("nan")}], "text": "前提 आधार"}
    atomic_write_json(tmp_path / "one.json", row)
    atomic_write_jsonl(tmp_path / "rows.jsonl", [row, {"ok": 1}])
    doc = _strict((tmp_path / "one.json").read_text(encoding="utf-8"))
    lines = [_strict(line) for line in (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = {"sd": None, "p": None, "n": 3, "x": 0.5, "path": "a/b", "nested": [1.5, None, {"k": None}],
                "text": "前提 आधार"}
    assert doc == expected and lines == [expected, {"ok": 1}]
    assert "前提" in (tmp_path / "one.json").read_text(encoding="utf-8")  # UTF-8, not \\u escapes
    assert orjson.loads((tmp_path / "one.json").read_bytes()) == expected


def test_a_failing_writer_leaves_the_old_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    atomic_write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(path, rows())
    assert path.read_text() == '{"a":1}\n' and [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
