"""Ctrl-C during a command: a one-line message and exit code 130, no traceback; `govtune run` says how to
continue."""

import shlex

from govtune.cli import main


def _interrupted(*args, **kwargs):  # what Ctrl-C raises in the main thread, wherever the command is
    raise KeyboardInterrupt


def test_an_interrupted_run_says_the_command_that_continues_it(monkeypatch, capsys, tmp_path):
    import govtune.study.grid

    monkeypatch.setattr(govtune.study.grid, "run_study", _interrupted)
    out = tmp_path / "my study"  # a space: the command printed must still paste into a shell
    assert main(["run", "demo", "model=tiny-llama", "seeds=0", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("govtune run: interrupted; finished runs are kept; continue with: ")
    command = line.split("continue with: ", 1)[1]
    assert shlex.split(command) == ["govtune", "run", "demo", "model=tiny-llama", "seeds=0", "--out", str(out),
                                    "--resume"]


def test_an_interrupted_ray_run_resumes_on_ray(monkeypatch, capsys, tmp_path):
    import govtune.study.grid

    monkeypatch.setattr(govtune.study.grid, "run_study", _interrupted)
    argv = ["run", "demo", "--out", str(tmp_path), "--executor", "ray", "--ray-address", "head:6379"]
    assert main(argv) == 130
    command = capsys.readouterr().err.strip().splitlines()[-1].split("continue with: ", 1)[1]
    assert shlex.split(command)[-5:] == ["--resume", "--executor", "ray", "--ray-address", "head:6379"]


def test_other_commands_say_only_that_they_were_interrupted(monkeypatch, capsys, tmp_path):
    import govtune.cli.report

    monkeypatch.setattr(govtune.cli.report, "_report", _interrupted)  # read when `main` registers the command
    assert main(["report", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "govtune report: interrupted"
