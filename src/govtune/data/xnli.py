"""XNLI (Conneau et al., 2018): premise/hypothesis pairs labelled entailment, neutral or contradiction.

Local layout: `DIR/xnli/{lang}.{split}.jsonl` (or `.jsonl.xz` / `.jsonl.gz`; the shipped files are xz), one
object per line with `premise`, `hypothesis` and `label` (a name, or the hub's integer 0/1/2). Hub:
`load_xnli("en", data_dir="facebook/xnli")` reads config `en`. Rows are aligned across languages, so `row`
identifies the same pair in every language."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from pathlib import Path

from govtune.data.jsonl import find, listing, read_jsonl
from govtune.data.source import load_hub, resolve, select
from govtune.languages import XNLI_LANGUAGES, iso_code

# The canonical hub copy: one config per language (`en`, `zh`, ...), splits train / validation / test, fields
# premise, hypothesis and label (ClassLabel 0/1/2 in LABELS order).
HUB_NAME = "facebook/xnli"
# Order of the hub's integer labels (facebook/xnli ClassLabel names); also the class order of our probabilities.
LABELS = ("entailment", "neutral", "contradiction")


def label_name(value) -> str:
    """The class name of an XNLI label given as a name (any case) or as the hub's integer 0/1/2 (or "0".."2").

    Raises ValueError for anything else: -1 (the hub's "no label"), 3, True, "maybe", None."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in LABELS:
            return key
        if key in ("0", "1", "2"):
            return LABELS[int(key)]
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value < len(LABELS):
        return LABELS[int(value)]
    raise ValueError(f"label {value!r} is not an XNLI class: use one of {', '.join(LABELS)} (or 0/1/2 in that order)")


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
        path = find(source / "xnli" / f"{lang}.{split}.jsonl")  # or .jsonl.xz / .jsonl.gz
        if path is None:
            have = listing(source / "xnli")
            raise FileNotFoundError(f"no XNLI file {source / 'xnli' / f'{lang}.{split}.jsonl'} (nor .xz, .gz): "
                                    f"{lang!r} split {split!r} is not in {source} (it has: "
                                    f"{', '.join(have) or 'no xnli/ files'}); pass --data DIR with that file, "
                                    f"or a hub dataset name such as {HUB_NAME!r}")
        raw = read_jsonl(path)
    else:
        raw = list(load_hub(source, lang, split))
    keep = select(len(raw), rows, limit, f"XNLI {lang} {split}")
    out = []
    for i in keep:
        r = raw[i]
        try:
            label = label_name(r["label"])
        except ValueError as e:
            raise ValueError(f"XNLI {lang} {split}, row {i}: {e}; fix the data") from None
        out.append({"premise": r["premise"], "hypothesis": r["hypothesis"], "label": label,
                    "lang": lang, "id": f"xnli-{lang}-{split}-{i}", "row": i})
    return out
