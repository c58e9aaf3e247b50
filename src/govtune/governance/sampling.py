"""The k-shot sampler: k records per language, balanced across labels, reproducible from a seed."""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence
from pathlib import Path

import orjson

from govtune.governance.records import Record


def _removed_by(report: dict | None, lang: str) -> str:
    if not report or "stages" not in report:
        return "no curation report was given, so the stages that removed records are unknown"
    parts = []
    for stage, block in report["stages"].items():
        counts = block.get("dropped_by_language", {}).get(lang, {})
        if counts:
            detail = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(), key=lambda x: -x[1]))
            parts.append(f"{stage.upper()} removed {sum(counts.values())} ({detail})")
    reached = report["stages"].get("c0", {}).get("input_by_language", {}).get(lang)
    head = f"the pool had {reached} {lang} records; " if reached is not None else ""
    return head + ("; ".join(parts) if parts else "no stage removed any")


def _quotas(sizes: dict, k: int, rng: random.Random) -> dict:
    """Split k over labels as evenly as possible; a label short of its share passes the rest on."""
    labels = sorted(sizes, key=str)
    quota = {lab: k // len(labels) for lab in labels}
    for lab in rng.sample(labels, k % len(labels)):
        quota[lab] += 1
    spare = 0
    for lab in labels:
        if quota[lab] > sizes[lab]:
            spare += quota[lab] - sizes[lab]
            quota[lab] = sizes[lab]
    while spare:
        open_labels = [lab for lab in labels if quota[lab] < sizes[lab]]
        for lab in sorted(open_labels, key=lambda lab: (quota[lab], str(lab))):
            if spare == 0:
                break
            quota[lab] += 1
            spare -= 1
    return quota


def sample_kshot(records, langs: Sequence[str] | str, k: int, seed: int = 0, *, report: dict | None = None,
                 label_field: str = "label") -> list[Record]:
    """k records per language, balanced across labels (records without a label form one group).

    records: a list of records or a `CurationResult` (then its report explains shortfalls).
    Raises ValueError naming the language, its count and what the curation stages removed when a language
    has fewer than k records, or none at all."""
    if hasattr(records, "kept") and hasattr(records, "report"):
        report = report or records.report
        records = records.kept
    if isinstance(langs, str):
        langs = [x.strip() for x in langs.split(",") if x.strip()]
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r}: give a positive number of examples per language")
    out: list[Record] = []
    for lang in langs:
        pool = [r for r in records if r.get("lang") == lang]
        out += [pool[i] for i in _draw(lang, [r.get(label_field) for r in pool], k, seed, report)]
    return out


def _draw(lang: str, labels: Sequence, k: int, seed: int, report: dict | None) -> list[int]:
    """Positions of the k records drawn from one language's records, given their labels in order."""
    if not labels:
        raise ValueError(f"language {lang!r} has no records left after curation; {_removed_by(report, lang)}. "
                         f"Add {lang} data to the pool, relax the filters, or drop {lang} from the languages")
    if len(labels) < k:
        raise ValueError(f"language {lang!r} has {len(labels)} records after curation, fewer than k={k}; "
                         f"{_removed_by(report, lang)}. Lower k, relax the filters or add {lang} data")
    rng = random.Random(f"{seed}:{lang}")
    groups: dict = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    quota = _quotas({lab: len(g) for lab, g in groups.items()}, k, rng)
    chosen = []
    for lab in sorted(groups, key=str):
        chosen += rng.sample(groups[lab], quota[lab])
    rng.shuffle(chosen)
    return chosen


def sample_kshot_file(path: str | Path, langs: Sequence[str] | str, k: int, seed: int = 0, *,
                      report: dict | None = None, label_field: str = "label") -> list[Record]:
    """`sample_kshot` over a curated JSON-lines file (kept.jsonl) too large to hold: one pass keeps each
    record's label and byte offset per language (16 bytes a record), then the chosen lines are read back.
    The draw is the one `sample_kshot` makes on the same records in memory."""
    if isinstance(langs, str):
        langs = [x.strip() for x in langs.split(",") if x.strip()]
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r}: give a positive number of examples per language")
    index: dict[str, tuple[list, array]] = {lang: ([], array("q")) for lang in langs}
    interned: dict = {}  # one object per distinct label, not one per record
    with open(path, "rb") as f:
        offset = 0
        for line in f:
            if line.strip():
                row = orjson.loads(line)
                entry = index.get(row.get("lang"))
                if entry is not None:
                    label = row.get(label_field)
                    entry[0].append(interned.setdefault(label, label) if isinstance(label, (str, int)) else label)
                    entry[1].append(offset)
            offset += len(line)
        out: list[Record] = []
        for lang in langs:
            labels, offsets = index[lang]
            for i in _draw(lang, labels, k, seed, report):
                f.seek(offsets[i])
                out.append(orjson.loads(f.readline()))
    return out
