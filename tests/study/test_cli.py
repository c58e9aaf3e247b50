from pathlib import Path

from govtune.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo.yaml")


def test_unknown_key_and_method_fail_cleanly_and_create_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", DEMO, "metods=lora", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'metods'" in err and "did you mean 'methods'" in err and "Traceback" not in err
    assert main(["run", DEMO, "methods=lora,bofft", "--out", str(out)]) == 2
    assert "unknown method 'bofft'" in capsys.readouterr().err
    assert not out.exists()


def test_run_refuses_other_studies_and_needs_resume_for_its_own(tmp_path, capsys, study):
    from govtune.study.grid import run_study

    out = tmp_path / "s"
    config = study(methods=["lora"], seeds=[0], epochs=1)
    run_study(config, out, progress=False, report=False)
    def results():  # every file but the lock, whose holder line each run that takes it rewrites
        return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".govtune.lock"}

    before = results()
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(config.to_dict()))
    # same study, no --resume
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert "pass --resume to continue it" in capsys.readouterr().err
    # different settings, even with --resume
    assert main(["run", str(cfg), "epochs=3", "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds another study's results" in err and "differing keys: epochs" in err
    assert "--resume only continues the same study" in err
    # a directory that is not a study
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["run", str(cfg), "--out", str(other), "--resume"]) == 2
    assert "holds no govtune study" in capsys.readouterr().err
    assert results() == before  # nothing overwritten

    # --resume of the same study: nothing left to run, prints the report's path
    assert main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.md")
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


def test_report_of_a_missing_directory(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
