"""Whether a process is alive: the one test every part of fleetcv uses."""

from __future__ import annotations

import os


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
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            data = fh.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False  # ended between the two looks
        return _alive_without_procfs(pid)
    except OSError:
        return True
    # The state letter follows the command name, which may hold ")" itself.
    return data.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


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
