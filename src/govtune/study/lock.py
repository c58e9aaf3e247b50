"""One writer per study directory: `govtune run` holds an exclusive OS lock on `OUT/.govtune.lock` while it
works, and a second run on the same directory is refused at once, told who holds it.

The lock is `fcntl.flock` on an open file: the kernel releases it when the holder's process ends, however it
ends (kill -9 included), so a crashed run never leaves a stale lock behind; the file itself stays, with the
last holder's pid and host in it, which matters only while the lock is held. Not the `filelock` package: its
Unix lock opens the file with O_TRUNC on every attempt, so a refused run would erase the holder's pid and
host before it could read them. flock is advisory and, on network filesystems, only as good as the server's
lock support (NFSv4 and Lustre with flock enabled honour it)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Callable


class StudyLocked(FileExistsError):
    """Another process holds the study directory's lock."""


class StudyLock:
    """`with StudyLock(path):` holds the lock for the block; raises StudyLocked when another process has it."""

    def __init__(self, path: str | Path, out_dir: str | Path | None = None):
        self.path = Path(path)
        self.out_dir = Path(out_dir) if out_dir is not None else self.path.parent
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's line stays readable
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "an unknown process"
            os.close(fd)
            raise StudyLocked(
                f"{self.out_dir} is in use by another govtune run ({holder}; lock file {self.path}). Wait for "
                f"it to finish, or stop it, then rerun with --resume: only one run may write a study "
                f"directory at a time") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since "
                      f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def on_main(state, fn: Callable[[], None]) -> None:
    """Run fn on the main process of an accelerate launch (`state`: its PartialState); an error there is
    raised on every process, since one left waiting at the next barrier for a main process that gave up
    would wait for ever. The study's lock and its checks run through this."""
    error = None
    if state.is_main_process:
        try:
            fn()
        except (ValueError, FileExistsError, FileNotFoundError) as e:
            error = e
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list  # torch: only under a multi-process launch

        error = broadcast_object_list([error])[0]
    if error is not None:
        raise error
