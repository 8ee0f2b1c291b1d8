"""Whether a process is alive: the one test every part of fleetcv uses."""

from __future__ import annotations

import os

#: Whether this system has Linux's /proc (a macOS laptop has not): without
#: it, a missing /proc/PID file says nothing about process PID.
HAS_PROCFS = os.path.isdir("/proc/self")


def stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state (field 3) first.

    The command name is in parentheses and may hold ")" and spaces itself,
    so the fields start after the last ")". Raises OSError
    (FileNotFoundError once the process is gone, or without procfs).
    """
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return fh.read().rsplit(b")", 1)[-1].decode("ascii", "replace").split()


def pid_alive(pid) -> bool:
    """Whether `pid` is a live process on this machine.

    Parameters
    ----------
    pid : int, str or None
        The process id; None, 0 and negative ids are never alive.

    Returns
    -------
    bool
        False for a process that is gone or a zombie. A killed process whose
        parent is gone waits as a zombie until PID 1 reaps it, and PID 1 in
        a container often never does: ``os.kill(pid, 0)`` alone would call it
        alive for ever (a dead controller would then block a new cluster).
    """
    if not pid or int(pid) <= 0:
        return False
    pid = int(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        state = stat_fields(pid)[0]
    except FileNotFoundError:
        if HAS_PROCFS:
            return False  # ended between the two looks
        return _alive_without_procfs(pid)
    except OSError:
        return True
    return state not in ("Z", "X")


def _alive_without_procfs(pid: int) -> bool:
    """Ask psutil (no procfs: macOS, the BSDs) for the state procfs would give."""
    import psutil

    try:
        return psutil.Process(pid).status() not in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
