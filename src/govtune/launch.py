"""How many processes the launcher was asked for, so that a launch that starts fewer is said at once
instead of running single-process silently.

`torchrun`, `accelerate launch --multi_gpu` and MPI say the size of the job in the environment (WORLD_SIZE,
OMPI_COMM_WORLD_SIZE, PMI_SIZE). `accelerate launch --cpu --num_processes N` without MPI starts one plain
process and puts N nowhere in its environment (it sets ACCELERATE_USE_CPU, ACCELERATE_MIXED_PRECISION,
MASTER_ADDR, MASTER_PORT and the dynamo settings only), so the request is read from the launcher's own
command line, the parent process's, with accelerate's argument parser.

A launched process also ends with its launcher (`exit_with_launcher`): torchrun's workers outlive a killed
agent by default and would run the study on, unseen, beside a `--resume` started after the kill."""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import sys
from pathlib import Path

SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
# set by every `accelerate launch` in the processes it starts
ACCELERATE_LAUNCHED = "ACCELERATE_MIXED_PRECISION"
PR_SET_PDEATHSIG = 1  # linux/prctl.h

HOW = ("on CPUs use `torchrun --nproc_per_node {n} -m govtune ...` or `accelerate launch --multi_gpu "
       "--num_processes {n} -m govtune ...` (ACCELERATE_USE_CPU=true keeps them on the CPU on a GPU machine); "
       "`accelerate launch --cpu` starts several processes only through MPI (--mpirun_hostfile)")


def cpu_processes() -> bool:
    """Whether launched processes are CPU processes joined by gloo: on a machine without an accelerator, or
    with ACCELERATE_USE_CPU set. accelerate forms that group only when asked for the CPU (PartialState(cpu=
    True)); otherwise it leaves each process that `torchrun` starts on a CPU machine on its own."""
    import torch  # here, not at the top: `govtune --help` imports this module and should stay fast
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.accelerator.is_available()


def _int(value: str | None) -> int:
    try:
        return int(value or 1)
    except ValueError:
        return 1


def accelerate_request(cmdline: list[str]) -> int | None:
    """--num_processes of an `accelerate launch` command line (argv), or None when it is not one or sets
    no number (accelerate then reads its config file, which is not consulted here)."""
    for i, arg in enumerate(cmdline):
        name = Path(arg).name
        if (name == "accelerate" and cmdline[i + 1:i + 2] == ["launch"]) or arg == "accelerate.commands.launch":
            rest = cmdline[i + 2:] if name == "accelerate" else cmdline[i + 1:]
            from accelerate.commands.launch import launch_command_parser

            known, _ = launch_command_parser().parse_known_args(rest)
            return known.num_processes
    return None


def _parent_cmdline() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:  # not Linux, or the launcher is gone
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def requested_processes(environ=os.environ) -> tuple[int, str]:
    """(processes the launcher was asked for, where that was read); (1, "") when not launched for more."""
    for var in SIZE_VARIABLES:
        if _int(environ.get(var)) > 1:
            return _int(environ[var]), f"{var}={environ[var]}"
    if ACCELERATE_LAUNCHED in environ:
        asked = accelerate_request(_parent_cmdline())
        if asked is not None and asked > 1:
            return asked, f"accelerate launch --num_processes {asked}"
    return 1, ""


def warn_if_fewer_processes(running: int, environ=os.environ) -> str | None:
    """Print (stderr) and return a warning when fewer processes run than the launcher was asked for."""
    asked, source = requested_processes(environ)
    if asked <= running:
        return None
    message = (f"govtune: warning: the launcher was asked for {asked} processes ({source}) but this is a "
               f"{running}-process run. To start {asked}, {HOW.format(n=asked)}.")
    print(message, file=sys.stderr, flush=True)
    return message


def launched(environ=os.environ) -> bool:
    """Whether this process was started by torchrun, `accelerate launch` or MPI."""
    return "LOCAL_RANK" in environ or ACCELERATE_LAUNCHED in environ or requested_processes(environ)[0] > 1


def exit_with_launcher() -> bool:
    """Under a launcher, have the kernel kill this process when the launcher dies (Linux prctl
    PR_SET_PDEATHSIG; SIGKILL, as the launcher got: every file govtune writes is written atomically).
    Returns whether it is armed."""
    if not launched() or not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
    return True



def leave_process_group() -> bool:
    """Destroy the process group this process joined, if any; returns whether there was one.

    A gloo group left to the interpreter's exit is torn down with its worker threads still joinable, and
    the C++ runtime aborts the process ("terminate called without an active exception"): the launcher
    then reports a run that finished, or a refusal that was meant to end with exit code 2, as a SIGABRT.
    `leave_process_group_at_exit` has this run at exit."""
    dist = sys.modules.get("torch.distributed")  # never imported: no group to leave
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    dist.destroy_process_group()
    return True


def leave_process_group_at_exit() -> None:
    """Leave the process group at the interpreter's exit (once however often called). At exit, not when a
    command returns: accelerate's PartialState keeps the group for the process's life, and a process may run
    several commands (`govtune.cli.main` twice) on it."""
    atexit.unregister(leave_process_group)
    atexit.register(leave_process_group)
