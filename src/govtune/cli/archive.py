"""`govtune archive OUT [--keep]` and `govtune restore OUT [--out DIR]` (govtune.results.archive)."""

from __future__ import annotations

import argparse
from pathlib import Path

from govtune.results.archive import archive_study, restore_study


def register(subparsers) -> None:
    archive = subparsers.add_parser(
        "archive", help="pack a study's bulk (histories, predictions, curated pools) into OUT/bulk.tar.xz",
        description="Pack the training histories, predictions, curated pools and exports of the study in OUT "
                    "into OUT/bulk.tar.xz (xz, with a sha256 file beside it) and remove them; study.json, "
                    "each run's result.json and the report stay. `govtune restore OUT` puts them back.")
    archive.add_argument("out", help="a study's output directory")
    archive.add_argument("--keep", action="store_true", help="keep the packed files (only write the archive)")
    archive.set_defaults(func=_archive)

    restore = subparsers.add_parser(
        "restore", help="put back the files of OUT/bulk.tar.xz, in place or into a copy (--out)",
        description="Check OUT/bulk.tar.xz against its sha256 and restore its files, in place or (--out DIR) "
                    "into a new copy of the study. Then `govtune run CONFIG --out DIR --resume` runs nothing and "
                    "rebuilds results.sqlite, and `govtune report DIR` writes the report.")
    restore.add_argument("out", help="a study's output directory holding bulk.tar.xz")
    restore.add_argument("--out", dest="to", default=None, metavar="DIR",
                         help="restore into this new (or empty) directory instead of in place")
    restore.set_defaults(func=_restore)


def _archive(args: argparse.Namespace) -> int:
    info = archive_study(Path(args.out), remove=not args.keep)
    print(f"{info.path}: {info.files} files, {info.size / 1e6:.1f} MB in {info.archive_size / 1e6:.2f} MB "
          f"(sha256 {info.sha256}){'' if args.keep else '; the packed files were removed'}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    where = Path(args.to) if args.to else Path(args.out)
    written = restore_study(Path(args.out), args.to)
    print(f"{where}: {len(written)} files restored; `govtune run CONFIG --out {where} --resume` rebuilds "
          f"results.sqlite (running nothing), then `govtune report {where}`")
    return 0
