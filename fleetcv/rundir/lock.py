"""One driver per run directory: an exclusive lock held while it runs.

Runs on the driver. Two drivers of one run (two `--resume` at once, or a
resume while the first still runs) would both submit the missing pairs and
overwrite each other's meta.json. The lock is `flock` on `run.lock` in the
run directory: the kernel drops it when the process dies, however it dies,
so a stale lock never needs cleaning; the file names the holder's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fleetcv.errors import UserError

LOCK_FILE = "run.lock"

#: run directory -> the open lock file of this process.
_held: dict[Path, int] = {}


class RunLocked(UserError):
    """Another live driver holds the run directory."""


def lock_run(run_dir: str | os.PathLike, resume_hint: str = "") -> None:
    """Take the run's lock, or raise `RunLocked` naming the driver that holds it.

    Taking a lock this process already holds does nothing.
    """
    path = Path(run_dir).resolve()
    if path in _held:
        return
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunLocked(
            f"{path}: another driver (pid {holder}) is running this run; two would "
            "submit the same fits and overwrite each other's results. Fix: wait for "
            f"it to end, or stop it (kill {holder}, or invoke search.abort) and "
            f"resume again{resume_hint}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[path] = fd


def unlock_run(run_dir: str | os.PathLike) -> None:
    """Release the run's lock if this process holds it."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
