"""Mapping a dataset's own field names onto govtune's record fields (LLaMA-Factory's `columns`, torchtune's
`column_map`): `{"text": "body", "lang": "language", "label": "intent"}` reads `body` as the text.

Targets: `text`, `text_pair` (the second text of a pair: the record then holds `premise` = text and
`hypothesis` = text_pair, as NLI pairs do), `label`, `lang` and `id`. Fields not named in the mapping are
carried through unchanged.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from govtune.governance.records import Record

TARGETS = ("text", "text_pair", "label", "lang", "id")


class ColumnError(ValueError):
    """A mapped field is missing from a row (the message names the field, the row and the fix)."""


def parse_columns(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """A checked mapping target -> source field from a dict or from "text=body,lang=language"."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
        bad = ["=".join(p) for p in pairs if len(p) != 2 or not p[0].strip() or not p[1].strip()]
        if bad:
            raise ValueError(f"columns: {bad[0]!r} is not TARGET=FIELD: write e.g. "
                             f"text=body,lang=language,label=intent")
        spec = {k.strip(): v.strip() for k, v in pairs}
    columns = dict(spec)
    for target, source in columns.items():
        if target not in TARGETS:
            close = difflib.get_close_matches(target, TARGETS, n=1, cutoff=0.5)
            raise ValueError(f"columns: unknown target {target!r}{f' (did you mean {close[0]!r}?)' if close else ''}: "
                             f"map your fields onto {', '.join(TARGETS)}, e.g. text=body")
        if not isinstance(source, str) or not source:
            raise ValueError(f"columns: {target} must name a field of your data, got {source!r}")
    if "text_pair" in columns and "text" not in columns:
        raise ValueError("columns: text_pair is mapped but text is not: map both (text=FIELD,text_pair=FIELD)")
    return columns


def map_columns(row: Record, columns: Mapping[str, str], where: str = "a row") -> Record:
    """`row` with its mapped fields renamed to govtune's (a pair's two texts to premise and hypothesis).

    Raises ColumnError when a mapped field is missing from the row, or when a field the mapping would
    write already exists under that name and is not mapped itself (it would be overwritten)."""
    if not columns:
        return row
    missing = [(t, s) for t, s in columns.items() if s not in row]
    if missing:
        target, source = missing[0]
        close = difflib.get_close_matches(source, list(row), n=1, cutoff=0.5)
        hint = f"{target}={close[0]}" if close else f"{target}=<one of {sorted(row)[:10]}>"
        raise ColumnError(f"{where}: columns maps {target}={source}, but there is no field {source!r} "
                          f"(the row has {sorted(row)[:10]}): fix the mapping, e.g. {hint}")
    sources = set(columns.values())
    names = {"text": "text", "label": "label", "lang": "lang", "id": "id"}
    if "text_pair" in columns:
        names.update(text="premise", text_pair="hypothesis")
    out = {k: v for k, v in row.items() if k not in sources}
    for target, source in columns.items():
        name = names[target]
        if name in out:
            raise ColumnError(f"{where}: columns maps {target}={source}, but the row also has a field {name!r} "
                              f"that the mapping would overwrite: rename that field, or map it instead")
        out[name] = row[source]
    return out
