"""A study's bulk in one compressed, checksummed archive, and back.

`govtune archive OUT` packs the files of `StudyLayout.bulk_files()` (training curves, predictions, curated
pools, exports: govtune.results.layout.BULK) into OUT/bulk.tar.xz, checks the archive by reading it
back, writes its sha256 beside it (OUT/bulk.tar.xz.sha256, the format of `sha256sum`) and removes the packed
files. What a reader opens stays: study.json, each run's result.json, the report. `govtune restore OUT
[--out DIR]` puts the files back, in place or into a new copy of the study, every file checked against the
sha256 the archive's manifest records for it; `govtune run ... --resume` on the restored directory then runs
nothing and rebuilds results.sqlite, and `govtune report` writes the same report.

The archive is reproducible: members in a fixed order with zeroed owners and times, so the same files give
the same bytes. Its first member, MANIFEST.json, lists every file with its size and sha256; the order
after it groups files of one kind (every history.json, then every xnli.jsonl, ...), which lets xz's
dictionary find the repeats across runs."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from govtune.atomic import atomic_write_bytes, atomic_write_dir, atomic_write_text, atomic_write_with
from govtune.results import manifest as provenance
from govtune.results.layout import LOCK, StudyLayout

MANIFEST = "MANIFEST.json"
FORMAT = 1
PRESET = 9 | lzma.PRESET_EXTREME  # the smallest xz output; packing a study is rare, reading it back is fast


class CorruptArchive(ValueError):
    """The archive (or its checksum file) is damaged or does not match; nothing was restored from it."""


@dataclass(frozen=True)
class ArchiveInfo:
    path: Path
    files: int  # files packed
    size: int  # their bytes
    archive_size: int  # the archive's bytes
    sha256: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def archive_study(where: StudyLayout | str | Path, remove: bool = True) -> ArchiveInfo:
    """Pack the study's bulk files into its archive (see module docstring); remove them unless
    `remove=False`. An archive already there must be restored first (its files are packed again)."""
    layout = StudyLayout.of(where)
    if not layout.study.exists():
        raise FileNotFoundError(f"{layout.root} holds no govtune study ({layout.study.name} missing): pass the --out "
                                f"directory of a `govtune run`")
    check_restored(layout)  # an archive already there: every file it holds is back, so none is lost
    files = layout.bulk_files()
    if not files:
        raise FileNotFoundError(f"{layout.root} has none of the files `govtune archive` packs (training histories, "
                                f"predictions, curated pools, exports): nothing to archive")
    names = {p: p.relative_to(layout.root).as_posix() for p in files}
    manifest = {"format": FORMAT, "files": {names[p]: {"size": p.stat().st_size, "sha256": provenance.sha256_file(p)}
                                            for p in files}}
    order = sorted(files, key=lambda p: (p.name, names[p]))  # one kind of file after another

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:xz", preset=PRESET, format=tarfile.PAX_FORMAT) as tar:
            raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
            tar.addfile(_member(MANIFEST, len(raw)), io.BytesIO(raw))
            for p in order:
                with open(p, "rb") as f:
                    tar.addfile(_member(names[p], manifest["files"][names[p]]["size"]), f)

    atomic_write_with(layout.archive, write)
    digest = provenance.sha256_file(layout.archive)
    atomic_write_text(layout.archive_checksum, f"{digest}  {layout.archive.name}\n")
    _verify_members(layout)  # read back before anything is removed
    if remove:
        for p in files:
            p.unlink()
        _remove_empty_dirs(layout.root, {p.parent for p in files})
    _note(layout, [layout.archive, layout.archive_checksum, *files], "archive")
    return ArchiveInfo(layout.archive, len(files), sum(e["size"] for e in manifest["files"].values()),
                       layout.archive.stat().st_size, digest)


def _remove_empty_dirs(root: Path, dirs: set[Path]) -> None:
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while d != root and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent


def check_archive(layout: StudyLayout) -> str:
    """The archive's sha256, checked against its checksum file; CorruptArchive (naming the file) if they
    differ or either is missing."""
    archive, checksum = layout.archive, layout.archive_checksum
    if not archive.is_file():
        raise FileNotFoundError(f"{layout.root} has no {archive.name}: nothing to restore (`govtune archive "
                                f"{layout.root}` writes it)")
    if not checksum.is_file():
        raise CorruptArchive(f"{checksum} is missing, so {archive} cannot be checked: get both files again "
                             f"(e.g. `git checkout -- {archive} {checksum}`)")
    expected = checksum.read_text().split()[0] if checksum.read_text().split() else ""
    actual = provenance.sha256_file(archive)
    if actual != expected:
        raise CorruptArchive(f"{archive} is damaged: its sha256 is {actual}, {checksum.name} says {expected}. "
                             f"Nothing was restored; get the file again (e.g. `git checkout -- {archive}`)")
    return actual


def read_manifest(layout: StudyLayout) -> dict[str, dict]:
    """The archive's file list (relative path -> size, sha256), read from its first member alone."""
    try:
        with tarfile.open(layout.archive, "r:xz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise CorruptArchive(f"{layout.archive} has no {MANIFEST} first: it was not written by "
                                     f"`govtune archive`; get the file again")
            manifest = json.loads(tar.extractfile(first).read())
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError, ValueError) as e:
        if isinstance(e, CorruptArchive):
            raise
        raise CorruptArchive(f"{layout.archive} cannot be read ({e}); get the file again") from None
    if manifest.get("format") != FORMAT:
        raise CorruptArchive(f"{layout.archive} is format {manifest.get('format')}, this govtune reads format "
                             f"{FORMAT}: restore it with the govtune that wrote it")
    return manifest["files"]


def _safe_name(layout: StudyLayout, name: str) -> Path:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name:
        raise CorruptArchive(f"{layout.archive} holds a file outside the study ({name!r}); it was not written "
                             f"by `govtune archive`")
    return Path(*path.parts)


def _members(layout: StudyLayout):
    """(relative path, bytes) of every packed file, each checked against the manifest."""
    files = read_manifest(layout)
    seen = set()
    try:
        with tarfile.open(layout.archive, "r:xz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                entry = files.get(member.name)
                if entry is None or not member.isfile():
                    raise CorruptArchive(f"{layout.archive} holds {member.name!r}, which its manifest does not "
                                         f"list; get the file again")
                data = tar.extractfile(member).read()
                if len(data) != entry["size"] or _sha256(data) != entry["sha256"]:
                    raise CorruptArchive(f"{layout.archive}: {member.name} does not match its manifest "
                                         f"checksum; get the archive again")
                seen.add(member.name)
                yield _safe_name(layout, member.name), data
    except (tarfile.TarError, lzma.LZMAError, EOFError) as e:
        raise CorruptArchive(f"{layout.archive} cannot be read ({e}); get the file again") from None
    if seen != set(files):
        raise CorruptArchive(f"{layout.archive} lacks {len(set(files) - seen)} file(s) its manifest lists "
                             f"(e.g. {sorted(set(files) - seen)[0]}); get the file again")


def _verify_members(layout: StudyLayout) -> None:
    for _ in _members(layout):
        pass


def missing_files(layout: StudyLayout) -> list[str]:
    """The archive's files that are not in the study directory (none without an archive)."""
    if not layout.archive.exists():
        return []
    return [name for name in read_manifest(layout) if not (layout.root / name).is_file()]


def check_restored(where: StudyLayout | str | Path) -> None:
    """Refuse, naming the command, a study whose archive has not been restored: its runs would be read
    without their histories and predictions."""
    layout = StudyLayout.of(where)
    missing = missing_files(layout)
    if missing:
        raise FileNotFoundError(
            f"{layout.root} keeps {len(missing)} of its files (training histories, predictions, curated pools) "
            f"in {layout.archive.name}, e.g. {missing[0]}: restore them first with `govtune restore {layout.root}` "
            f"(in place) or `govtune restore {layout.root} --out DIR` (a copy to work in), then run the command "
            f"again")


def restore_study(where: StudyLayout | str | Path, out: str | Path | None = None) -> list[Path]:
    """Put the archive's files back: into the study itself, or (`out`) into a new directory that first gets
    a copy of the study's other files (without the archive). Checks the archive's sha256 and every file's
    before writing, and refuses to overwrite a file with other content. Returns the files written."""
    layout = StudyLayout.of(where)
    check_archive(layout)
    files = read_manifest(layout)
    target = StudyLayout(out) if out is not None else layout
    if out is not None:
        if target.root.resolve() == layout.root.resolve():
            target = layout
        elif not target.is_empty():
            raise FileExistsError(f"{target.root} is not empty: restore into a new or empty directory, or in "
                                  f"place (`govtune restore {layout.root}`)")
    clash = [name for name, entry in files.items() if (target.root / name).is_file()
             and provenance.sha256_file(target.root / name) != entry["sha256"]]
    if clash:
        raise FileExistsError(f"{target.root} already has {len(clash)} of the archive's files with other content "
                              f"(e.g. {clash[0]}); nothing was restored. Move them away, or restore into a new "
                              f"directory with --out")
    _verify_members(layout)  # the whole archive is sound before a file is written
    if target is layout:
        written = [atomic_write_bytes(layout.root / name, data) for name, data in _members(layout)
                   if not (layout.root / name).is_file()]
        _note(layout, written, "restore")
        return written
    skip = {layout.archive.name, layout.archive_checksum.name, LOCK}

    def write(tmp: Path) -> None:  # the copy appears whole or not at all
        shutil.copytree(layout.root, tmp, dirs_exist_ok=True,
                        ignore=lambda d, names: [n for n in names if n in skip and Path(d) == layout.root])
        for name, data in _members(layout):
            atomic_write_bytes(tmp / name, data)

    atomic_write_dir(target.root, write)
    written = [target.root / name for name in files]
    _note(target, [*written, target.archive, target.archive_checksum], "restore")  # the copy has no archive
    return written


def _note(layout: StudyLayout, paths: list[Path], action: str) -> None:
    """Archiving and restoring are legitimate rewrites: the study's provenance manifest, where it has one,
    records the files as they now are (removed ones dropped, the archive and restored ones added)."""
    if layout.manifest.exists():
        provenance.record(layout.root, paths, action)
