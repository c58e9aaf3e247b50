"""FLORES-200 (NLLB Team, 2022): sentences aligned across 200 languages, one per line.

Local layout: `DIR/flores/{flores_code}.{split}` (plain text, e.g. `flores/eng_Latn.dev`). Hub: a name such
as "openlanguagedata/flores_plus" (config = FLORES code, column `text`) or "facebook/flores" (column
`sentence`). Languages are ISO 639-1 codes mapped by `govtune.languages` (or FLORES codes)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from govtune.data.source import load_hub, resolve, select
from govtune.languages import flores_code, iso_code


def _sentences(source: Path | str, code: str, split: str) -> list[str]:
    if isinstance(source, Path):
        path = source / "flores" / f"{code}.{split}"
        if not path.exists():
            have = sorted(p.name for p in (source / "flores").iterdir()) if (source / "flores").is_dir() else []
            raise FileNotFoundError(f"no FLORES file {path}: {code} split {split!r} is not in {source} (it "
                                    f"has: {', '.join(have) or 'no flores/ files'}); pass --data DIR with that "
                                    f"file, or a hub dataset name such as 'openlanguagedata/flores_plus'")
        return path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    ds = load_hub(source, code, split)
    column = "text" if "text" in ds.column_names else "sentence"
    return list(ds[column])


def load_flores(src: str, tgt: str, split: str = "dev", data_dir: str | Path | None = None,
                lines: Iterable[int] | None = None, limit: int | None = None) -> list[dict]:
    """Aligned sentence pairs src -> tgt: dicts with src, ref, src_lang, tgt_lang (ISO codes), id, line and split."""
    if flores_code(src) == flores_code(tgt):
        raise ValueError(f"source and target language are both {src!r}: pass a pair such as en-zh")
    source = resolve(data_dir)
    s_code, t_code = flores_code(src), flores_code(tgt)
    srcs, refs = _sentences(source, s_code, split), _sentences(source, t_code, split)
    if len(srcs) != len(refs):
        raise ValueError(f"FLORES {s_code} has {len(srcs)} lines but {t_code} has {len(refs)}: the files of one "
                         f"split must be aligned line by line")
    keep = select(len(srcs), lines, limit, f"FLORES {s_code}-{t_code} {split}")
    s_iso, t_iso = _iso_or_code(src), _iso_or_code(tgt)
    return [{"src": srcs[i], "ref": refs[i], "src_lang": s_iso, "tgt_lang": t_iso,
             "id": f"flores-{s_iso}-{t_iso}-{split}-{i}", "line": i, "split": split} for i in keep]


def _iso_or_code(lang: str) -> str:
    try:
        return iso_code(lang)
    except ValueError:
        return lang  # a FLORES code outside our ISO table stays as given
