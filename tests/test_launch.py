"""What the launcher was asked for, read so that a launch that starts fewer processes says so."""

import os
import subprocess
import sys

from govtune.launch import accelerate_request, leave_process_group, requested_processes, warn_if_fewer_processes


def test_accelerate_command_lines_are_read_with_accelerate_own_parser():
    python = sys.executable
    assert accelerate_request([python, "/venv/bin/accelerate", "launch", "--cpu", "--num_processes", "3",
                               "-m", "govtune", "run", "c.yaml", "--num_processes", "9"]) == 3
    assert accelerate_request([python, "-m", "accelerate.commands.launch", "--num_processes=2", "x.py"]) == 2
    assert accelerate_request([python, "/venv/bin/accelerate", "launch", "x.py"]) is None  # from its config
    assert accelerate_request([python, "-m", "torch.distributed.run", "x.py"]) is None


def test_a_launch_of_fewer_processes_than_asked_is_said_on_stderr(capsys):
    assert warn_if_fewer_processes(2, {"WORLD_SIZE": "2"}) is None
    assert warn_if_fewer_processes(1, {}) is None
    message = warn_if_fewer_processes(1, {"OMPI_COMM_WORLD_SIZE": "4"})
    assert "asked for 4 processes (OMPI_COMM_WORLD_SIZE=4)" in message and "torchrun" in message
    assert message in capsys.readouterr().err


def test_accelerate_launch_cpu_starts_one_process_and_it_knows_two_were_asked(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text("from accelerate import PartialState\nfrom govtune.launch import requested_processes\n"
                      "print(PartialState(cpu=True).num_processes, *requested_processes())\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # one process (no MPI), whose environment says nothing of the 2: the launcher's command line does
    assert proc.stdout.splitlines() == ["1 2 accelerate launch --num_processes 2"]
    assert requested_processes({}) == (1, "")


def test_a_process_group_is_left_before_exit_and_no_group_is_nothing_to_leave(tmp_path):
    import torch.distributed as dist

    assert leave_process_group() is False
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    assert dist.is_initialized()
    assert leave_process_group() is True
    assert not dist.is_initialized()
