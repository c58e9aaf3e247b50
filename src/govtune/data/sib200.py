"""SIB-200 (Adelani et al., 2024): topic classification of FLORES-200 sentences in 205 languages, 7 topics.

Local layout: `DIR/sib200/{flores_code}.{split}.jsonl` (or `.jsonl.xz` / `.jsonl.gz`; the shipped files are
xz), splits `train` and `dev`, one object per line with `index_id`, `category` and `text`. Hub: the canonical
copy `Davlan/sib200` (one config per FLORES-200 code, splits train / validation / test, the same fields):
`load_sib200("yor_Latn", data_dir="Davlan/sib200")`.

SIB-200 is parallel: one `index_id` is the same sentence, with the same topic, in every language, and it is a
FLORES-200 sentence (index_id < 997: line index_id of FLORES dev; otherwise line index_id - 997 of devtest).
Only the FLORES-dev rows are read, from any source: those are the rows govtune ships, so the hub and the
shipped files give the same rows, and FLORES devtest stays unseen by any SIB-200 split."""

from __future__ import annotations

from pathlib import Path

from govtune.data import DATA_DIR
from govtune.data.jsonl import find, listing, read_jsonl
from govtune.languages import flores_code
from govtune.data.source import load_hub, resolve

HUB_NAME = "Davlan/sib200"
# The topics in the order of the dataset card (and of the class probabilities).
LABELS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
SPLITS = ("train", "dev")  # the shipped splits; the hub calls dev `validation` (tried as an alias)
FLORES_DEV_LINES = 997  # index_id below this is FLORES-200 dev line index_id
ROWS = {"train": 373, "dev": 47}  # FLORES-dev rows per language in each shipped split


def flores_dev_line(index_id: int) -> int | None:
    """The FLORES-200 dev line a SIB-200 row's sentence is, or None for a devtest sentence."""
    return index_id if 0 <= index_id < FLORES_DEV_LINES else None


def languages(data_dir: str | Path | None = None) -> list[str]:
    """The FLORES-200 codes with a SIB-200 train file in a local directory (default: the shipped data)."""
    source = DATA_DIR if data_dir is None else Path(data_dir)
    return sorted({name.split(".")[0] for name in listing(source / "sib200") if name.endswith(".train.jsonl")})


def load_sib200(lang: str, split: str = "train", data_dir: str | Path | None = None) -> list[dict]:
    """The FLORES-dev rows of one language and split: dicts with index_id (int), category and text, in the
    source's order. `lang`: a FLORES-200 code (`yor_Latn`) or a code govtune.languages maps to one."""
    code = flores_code(lang)
    source = resolve(data_dir)
    if isinstance(source, Path):
        path = find(source / "sib200" / f"{code}.{split}.jsonl")
        if path is None:
            have = languages(source)
            raise FileNotFoundError(
                f"no SIB-200 file {source / 'sib200' / f'{code}.{split}.jsonl'} (nor .xz, .gz): language {lang!r} "
                f"split {split!r} is not in {source} ({len(have)} languages there"
                f"{': ' + ', '.join(have[:8]) + (', ...' if len(have) > 8 else '') if have else ''}); use a "
                f"FLORES-200 code such as yor_Latn, pass --data DIR with that file, or the hub dataset {HUB_NAME!r}")
        raw = read_jsonl(path)
    else:
        raw = _hub_rows(source, code, split)
    rows = []
    for i, r in enumerate(raw):
        try:
            row = {"index_id": int(r["index_id"]), "category": str(r["category"]), "text": str(r["text"])}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"SIB-200 {code} {split}, row {i}: needs index_id (an integer), category and text "
                             f"({e!r}); fix the data") from None
        if row["category"] not in LABELS:
            raise ValueError(f"SIB-200 {code} {split}, row {i}: category {row['category']!r} is not a topic: use "
                             f"one of {', '.join(LABELS)}")
        if flores_dev_line(row["index_id"]) is not None:
            rows.append(row)
    return rows


def _hub_rows(name: str, code: str, split: str) -> list[dict]:
    """A hub split's rows as dicts; a ClassLabel `category` becomes its name."""
    ds = load_hub(name, code, split)
    names = getattr(ds.features.get("category"), "names", None)
    return [{**r, "category": names[r["category"]]} if names else r for r in ds]
