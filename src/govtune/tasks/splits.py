"""Train / validation / test splits of a task: given as files, or carved per language and label with a seed.

A carved split is written down (the row ids of each split, with the seed and sizes it came from), and a
rerun reads it back instead of carving again: the same rows whatever changes in the sampling code. Every
split is then checked for leakage: a test (or validation) row whose input equals a train row is refused,
with the row ids, since the model would be scored on what it was tuned on."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

from govtune.atomic import atomic_write_json
from govtune.tasks.spec import SPLITS, TaskSpec


def _count(size: float | int, n: int) -> int:
    return int(size) if isinstance(size, int) else round(size * n)


def _label_interleaved(rows: list[dict], rng: random.Random) -> list[dict]:
    """The rows of one language shuffled within each label, then dealt label by label (round robin), so that
    any prefix is as label-balanced as the data allows."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r.get("label", "")), []).append(r)
    for key in sorted(groups):
        rng.shuffle(groups[key])
    order, queues = [], [groups[k] for k in sorted(groups)]
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop())
    return order


def carve(spec: TaskSpec, rows: list[dict]) -> dict[str, list[str]]:
    """Row ids per split: per language, `test_size` then `val_size` rows (counts or fractions of the
    language's rows), label-balanced, seeded; the rest is train."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    langs = sorted({r["lang"] for r in rows})
    for lang in langs:
        mine = [r for r in rows if r["lang"] == lang]
        n_test, n_val = _count(spec.test_size, len(mine)), _count(spec.val_size, len(mine))
        for key, n in (("test_size", n_test), ("val_size", n_val)):
            if n > len(mine):
                raise ValueError(f"{spec.where(key)}: {n} rows asked for language {lang!r}, which has only "
                                 f"{len(mine)}; lower {key} (or give a fraction such as 0.2)")
        if n_test + n_val >= len(mine):
            raise ValueError(f"{spec.where('test_size')}: language {lang!r} has {len(mine)} rows; test_size "
                             f"{n_test} + val_size {n_val} leave none to train on; lower them or add {lang} rows")
        order = _label_interleaved(mine, random.Random(f"{spec.seed}:{spec.name}:{lang}"))
        out["test"] += [r["id"] for r in order[:n_test]]
        out["validation"] += [r["id"] for r in order[n_test:n_test + n_val]]
        out["train"] += [r["id"] for r in order[n_test + n_val:]]
    return out


def split_record(spec: TaskSpec, ids: dict[str, list[str]]) -> dict:
    return {"task": spec.name, "seed": spec.seed, "val_size": spec.val_size, "test_size": spec.test_size,
            "splits": ids}


def carved_splits(spec: TaskSpec, rows: list[dict], path: Path | None) -> dict[str, list[dict]]:
    """The rows of each split, carved once and written to `path` (reread when it exists)."""
    by_id = {r["id"]: r for r in rows}
    if path is not None and Path(path).exists():
        written = json.loads(Path(path).read_text(encoding="utf-8"))
        same = {k: written.get(k) for k in ("seed", "val_size", "test_size")} == \
            {"seed": spec.seed, "val_size": spec.val_size, "test_size": spec.test_size}
        if same:
            ids = written["splits"]
            missing = [i for s in ids.values() for i in s if i not in by_id]
            if missing:
                raise ValueError(f"{path} lists rows no longer in the data of task {spec.name!r} (ids "
                                 f"{missing[:5]}): the data changed since the split was written; delete {path} "
                                 f"to carve a new split (results will not be comparable with the old one)")
            return {s: [by_id[i] for i in ids[s]] for s in SPLITS}
        raise ValueError(f"{path} was carved with seed/val_size/test_size "
                         f"{written.get('seed')}/{written.get('val_size')}/{written.get('test_size')}, the task "
                         f"now asks {spec.seed}/{spec.val_size}/{spec.test_size}: restore them, or delete {path} "
                         f"to carve a new split")
    ids = carve(spec, rows)
    if path is not None:
        atomic_write_json(Path(path), split_record(spec, ids))
    return {s: [by_id[i] for i in ids[s]] for s in SPLITS}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def input_key(row: dict) -> str:
    """What the model reads of a row (not its answer), normalised: equal keys are the same example."""
    if "messages" in row:
        return _norm("\n".join(m["content"] for m in row["messages"][:-1]))
    if "prompt" in row:
        return _norm(row["prompt"])
    return _norm(f"{row.get('text', '')}\n{row.get('text_pair', '')}")


def check_leakage(name: str, splits: dict[str, list[dict]]) -> None:
    """Refuse a test or validation row whose input equals a train row."""
    train = {}
    for r in splits.get("train", []):
        train.setdefault(input_key(r), r["id"])
    for split in ("test", "validation"):
        leaked = [(r["id"], train[input_key(r)]) for r in splits.get(split, []) if input_key(r) in train]
        if leaked:
            pairs = ", ".join(f"{a} = train {b}" for a, b in leaked[:5])
            raise ValueError(f"task {name!r}: {len(leaked)} {split} rows equal train rows ({pairs}"
                             f"{', ...' if len(leaked) > 5 else ''}): leakage. Remove the duplicates from one "
                             f"side (or deduplicate the data before splitting)")


def check_languages(name: str, splits: dict[str, list[dict]], langs: list[str], where: str,
                    train_langs: list[str] | None = None) -> None:
    """Every language must keep test rows, and every language tuned on (`train_langs`, None: all) train rows."""
    for split in ("train", "test"):
        have = {r["lang"] for r in splits.get(split, [])}
        need = langs if split == "test" or train_langs is None else [x for x in langs if x in train_langs]
        empty = [lang for lang in need if lang not in have]
        if empty:
            raise ValueError(f"task {name!r}: language {empty[0]!r} has no {split} rows {where}; add "
                             f"{empty[0]} rows, lower test_size/val_size or relax the curation, or drop "
                             f"{empty[0]} from the task's `languages`")
