"""A 2-process study whose launcher is killed (kill -9) in the middle of a training cell: its processes end
with it, and `govtune run --resume` under a new launch finishes the study from the cell's checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import yaml

from govtune.results.layout import StudyLayout


def _launch(config, out, port, *extra):
    # torchrun starts the two processes; with no accelerator they join as CPU processes through gloo
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            "-m", "govtune", "run", str(config), "--out", str(out), "--quiet", *extra]


def _wait_for(condition, proc, seconds=240.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, "the launch ended before the cell was half done"
        assert time.monotonic() < deadline, "no epoch checkpoint was written"
        time.sleep(0.02)


def test_killed_two_process_launch_resumes_to_the_end(tmp_path, study, free_port):
    config = study(methods=["hybrid"], seeds=[0], epochs=3, eval_limit=2, robustness=False)
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(config.to_dict()))
    out = tmp_path / "out"
    run = StudyLayout(out).run("hybrid-k8-c0-s0")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = subprocess.Popen(_launch(cfg, out, free_port()), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any(run.checkpoint.glob("checkpoint-step*")), launcher)
        workers = psutil.Process(launcher.pid).children()
        os.kill(launcher.pid, signal.SIGKILL)
    finally:
        launcher.kill()
        launcher.wait()
    assert len(workers) == 2
    gone, alive = psutil.wait_procs(workers, timeout=30)  # the processes end with their launcher
    assert not alive, f"processes {[p.pid for p in alive]} outlived their killed launcher"
    assert not run.done.exists()  # killed mid-cell

    resumed = subprocess.run(_launch(cfg, out, free_port(), "--resume"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "warning: the launcher was asked for 2 processes" not in resumed.stderr  # one 2-process group
    assert run.done.exists() and (out / "report.md").is_file()
    history = json.loads(run.history.read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    assert [(r["method"], r["seed"]) for r in json.loads((out / "results.json").read_text())] == [("hybrid", 0)]
