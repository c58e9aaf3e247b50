"""A study's bulk in bulk.tar.xz: archive -> restore gives every file back byte for byte; a damaged archive is
refused naming it, before anything is written; an unrestored study stops `run --resume` and `report` with the
restore command; a restored study resumes with nothing to run and reports as the original did."""

import hashlib
import shutil

import pytest

from govtune.cli import main
from govtune.results.archive import CorruptArchive, archive_study, read_manifest, restore_study
from govtune.study.grid import run_study
from govtune.results.layout import StudyLayout
from govtune.report.document import write_report


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny study: base, LoRA and the hybrid (lam histories), curated at C1 (a pool file)."""
    from tests.study.conftest import tiny_study

    config = tiny_study(methods=["lora", "hybrid"], seeds=[0], shots=[0, 8], curation=["c1"], eval_limit=3)
    out = tmp_path_factory.mktemp("original") / "study"
    run_study(config, out, progress=False)
    return config, out


def _checksums(root, skip=()):
    # manifest.json records each legitimate rewrite (archive, restore) with its time: compared by verify instead
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in (*skip, "manifest.json")}


@pytest.fixture
def archived(finished, tmp_path):
    """A copy of the finished study, archived."""
    config, out = finished
    mine = tmp_path / "archived"
    shutil.copytree(out, mine)
    info = archive_study(mine)
    return config, mine, info


def test_archive_packs_the_bulk_and_restore_gives_every_file_back_byte_for_byte(finished, archived, tmp_path):
    _, original = finished
    _, mine, info = archived
    layout = StudyLayout(mine)
    packed = set(read_manifest(layout))
    kinds = {"history.json", "xnli.jsonl", "c1.jsonl"}
    assert kinds <= {name.rsplit("/", 1)[-1] for name in packed}  # curves, predictions and the pool went in
    assert info.files == len(packed) and info.archive_size < info.size
    assert layout.bulk_files() == [] and layout.study.exists() and layout.run("lora-k8-c1-s0").result.exists()

    restore_study(mine, tmp_path / "copy")
    ours = _checksums(original, skip={".govtune.lock"})
    assert _checksums(tmp_path / "copy") == ours  # a new copy: every file, none changed, the archive left out
    restore_study(mine)  # in place
    assert _checksums(mine, skip={"bulk.tar.xz", "bulk.tar.xz.sha256", ".govtune.lock"}) == ours


def test_the_same_files_give_the_same_archive(archived, tmp_path):
    _, mine, info = archived
    restore_study(mine)
    first = (mine / "bulk.tar.xz").read_bytes()
    again = archive_study(mine, remove=False)
    assert again.sha256 == info.sha256 and (mine / "bulk.tar.xz").read_bytes() == first


@pytest.mark.parametrize("damage", ["flip", "cut", "checksum"])
def test_a_damaged_archive_is_refused_naming_it_and_nothing_is_written(archived, tmp_path, capsys, damage):
    _, mine, _ = archived
    archive = mine / "bulk.tar.xz"
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
    elif damage == "cut":
        archive.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (mine / "bulk.tar.xz.sha256").unlink()
    with pytest.raises(CorruptArchive, match="bulk.tar.xz"):
        restore_study(mine, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert main(["restore", str(mine)]) == 2
    assert str(archive if damage != "checksum" else mine / "bulk.tar.xz.sha256") in capsys.readouterr().err
    assert StudyLayout(mine).bulk_files() == []


def test_an_unrestored_study_names_the_restore_command(archived, capsys):
    config, mine, _ = archived
    for call in (lambda: write_report(mine), lambda: run_study(config, mine, resume=True, progress=False)):
        with pytest.raises(FileNotFoundError, match=f"govtune restore {mine}"):
            call()
    assert StudyLayout(mine).finished_runs()  # nothing was redone or removed
    assert main(["report", str(mine)]) == 2 and "govtune restore" in capsys.readouterr().err


def test_restore_refuses_to_overwrite_a_file_with_other_content(archived):
    _, mine, _ = archived
    history = StudyLayout(mine).run("lora-k8-c1-s0").history
    history.write_text("{}")
    with pytest.raises(FileExistsError, match="history.json"):
        restore_study(mine)
    assert history.read_text() == "{}" and not StudyLayout(mine).run("hybrid-k8-c1-s0").history.exists()


def test_a_restored_study_resumes_with_nothing_to_run_and_reports_as_the_original(finished, archived, tmp_path):
    config, original = finished
    _, mine, _ = archived
    copy = tmp_path / "restored"
    restore_study(mine, copy)
    outcome = run_study(config, copy, resume=True, progress=False)
    assert outcome.ran == [] and outcome.failed == {}
    assert len(outcome.skipped) == len(StudyLayout(original).finished_runs()) >= 3
    assert (copy / "report.md").read_text() == (original / "report.md").read_text()
    assert write_report(copy).read_text() == (original / "report.md").read_text()
