"""One writer per study directory: a second `govtune run` on a directory whose lock another process holds
is refused at once, told the holder's pid and host, and touches nothing; a holder killed with SIGKILL leaves
the lock free. Under a multi-process launch the main process alone takes it, and a refusal reaches every
process (none waits at a barrier for ever)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from govtune.cli import main
from govtune.results.layout import StudyLayout
from govtune.study.lock import StudyLock, StudyLocked

SRC = str(Path(__file__).resolve().parents[2] / "src")
HOLD = textwrap.dedent("""
    import sys, time
    from govtune.study.lock import StudyLock
    lock = StudyLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A process that takes the lock of tmp_path/out and keeps it until killed."""
    lock_path = StudyLayout(tmp_path / "out").lock
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path, capsys, holder, study):
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(study(methods=["lora"], seeds=[0]).to_dict()))
    assert main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"pid {holder.pid} on host {socket.gethostname()}" in err
    assert f"{out} is in use by another govtune run" in err and "rerun with --resume" in err
    assert [p.name for p in out.iterdir()] == [".govtune.lock"]  # no study.json, curation/ or runs/

    holder.send_signal(signal.SIGKILL)  # the holder dies without cleaning up: the kernel frees the lock
    holder.wait()
    with StudyLock(StudyLayout(out).lock) as lock:
        assert f"pid {os.getpid()} " in lock.path.read_text()


def test_lock_is_exclusive_within_one_process_and_released_on_exit(tmp_path):
    path = tmp_path / "out" / ".govtune.lock"
    with StudyLock(path):
        with pytest.raises(StudyLocked, match=f"pid {os.getpid()} on host"):
            StudyLock(path).acquire()
    StudyLock(path).acquire()  # released by the with block


RANKS = textwrap.dedent("""
    import os, sys
    from govtune.evaluation.sharding import process_state
    from govtune.study.lock import StudyLock, StudyLocked, on_main
    from govtune.launch import leave_process_group_at_exit
    leave_process_group_at_exit()  # as govtune's CLI does: a gloo group left to the exit aborts now and then
    state = process_state()  # as run_study: one gloo group of the launched CPU processes
    try:  # as run_study takes the study's lock
        on_main(state, lambda: StudyLock(sys.argv[1]).acquire())
        state.wait_for_everyone()
    except StudyLocked as e:  # one file per rank: their shared stdout may interleave
        with open(f"{sys.argv[2]}/rank{os.environ['RANK']}.txt", "w") as f:
            f.write(f"refused ({state.num_processes} processes) {e}")
""")


def test_every_process_of_a_launch_is_refused_not_left_waiting(tmp_path, holder):
    """torchrun with 2 CPU processes (gloo), taking the lock as run_study does: rank 0 finds it held; rank 1,
    which never touches the lock, gets the same refusal through the broadcast instead of waiting at the next
    barrier for ever."""
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(StudyLayout(tmp_path / "out").lock), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    refusals = [(tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)]
    assert all(r.startswith("refused (2 processes)") and f"pid {holder.pid}" in r for r in refusals)
