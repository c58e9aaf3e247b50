"""XNLI (Conneau et al., 2018): premise/hypothesis pairs labelled entailment, neutral or contradiction.

Local layout: `DIR/xnli/{lang}.{split}.jsonl`, one object per line with `premise`, `hypothesis` and `label`
(a name, or the hub's integer 0/1/2). Hub: `load_xnli("en", data_dir="facebook/xnli")` reads config `en`.
Rows are aligned across languages, so `row` identifies the same pair in every language."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from govtune.tasks._source import load_hub, resolve, select
from govtune.tasks.languages import XNLI_LANGUAGES, iso_code

# Order of the hub's integer labels (facebook/xnli ClassLabel names); also the class order of our probabilities.
LABELS = ("entailment", "neutral", "contradiction")


def _label(value) -> str:
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return LABELS[int(value)]
    name = str(value).strip().lower()
    if name not in LABELS:
        raise ValueError(f"XNLI label {value!r} is not one of {LABELS} (or 0/1/2): fix the data file")
    return name


def load_xnli(lang: str, split: str = "dev", data_dir: str | Path | None = None,
              rows: Iterable[int] | None = None, limit: int | None = None) -> list[dict]:
    """XNLI examples of one language: dicts with premise, hypothesis, label, lang, id and row.

    `rows` selects row indices (e.g. `govtune.data.XNLI_EVAL_ROWS`), `limit` keeps the first N of them."""
    if lang not in XNLI_LANGUAGES:
        lang = iso_code(lang)  # accepts eng_Latn-style codes
        if lang not in XNLI_LANGUAGES:
            raise ValueError(f"XNLI has no language {lang!r}: choose among {', '.join(XNLI_LANGUAGES)}")
    source = resolve(data_dir)
    if isinstance(source, Path):
        path = source / "xnli" / f"{lang}.{split}.jsonl"
        if not path.exists():
            have = sorted(p.name for p in (source / "xnli").glob("*.jsonl")) if (source / "xnli").is_dir() else []
            raise FileNotFoundError(f"no XNLI file {path}: {lang!r} split {split!r} is not in {source} "
                                    f"(it has: {', '.join(have) or 'no xnli/ files'}); pass --data DIR with "
                                    f"that file, or a hub dataset name such as 'facebook/xnli'")
        with path.open("rb") as f:
            raw = [orjson.loads(line) for line in f if line.strip()]
    else:
        raw = list(load_hub(source, lang, split))
    keep = select(len(raw), rows, limit, f"XNLI {lang} {split}")
    out = []
    for i in keep:
        r = raw[i]
        out.append({"premise": r["premise"], "hypothesis": r["hypothesis"], "label": _label(r["label"]),
                    "lang": lang, "id": f"xnli-{lang}-{split}-{i}", "row": i})
    return out
