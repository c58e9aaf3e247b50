"""Build the XNLI and SIB-200 files shipped in src/govtune/data from a directory of plain JSON-lines files
(one per language and split, as PROVENANCE.md describes them): each file xz-compressed byte for byte, so
a shipped file decompresses to its source exactly.

    python scripts/pack_data.py SOURCE_DIR          # SOURCE_DIR/xnli/*.dev.jsonl, SOURCE_DIR/sib200/*.jsonl

xz (the standard library's lzma) rather than gzip: the 425 files take 7.1 MB instead of 8.1 MB, and one
language still decompresses in about 20 ms."""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

from govtune.data import DATA_DIR

DATASETS = ("xnli", "sib200")


def pack(source: Path, target: Path = DATA_DIR) -> list[Path]:
    written = []
    for name in DATASETS:
        files = sorted((source / name).glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"no {source / name}/*.jsonl: pass the directory holding xnli/ and sib200/")
        (target / name).mkdir(parents=True, exist_ok=True)
        for path in files:
            out = target / name / f"{path.name}.xz"
            out.write_bytes(lzma.compress(path.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
            plain = target / name / path.name
            plain.unlink(missing_ok=True)  # one copy of each file: the compressed one
            written.append(out)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="directory with xnli/{lang}.dev.jsonl and sib200/{code}.{split}.jsonl")
    files = pack(p.parse_args().source)
    print(f"wrote {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB, under {DATA_DIR}")


if __name__ == "__main__":
    main()
