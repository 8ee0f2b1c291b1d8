"""`pid_alive`, the liveness test behind cluster.start, run status and clean-up.

Real processes: a killed process whose parent is gone becomes PID 1's child,
and PID 1 in a container often never reaps it, so it stays a zombie.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from runtime.pids import pid_alive


def _state(pid: int) -> str | None:
    """The /proc state letter of pid, None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return None


def _wait_state(pid: int, states: set, timeout: float = 10.0) -> str | None:
    deadline = time.monotonic() + timeout
    while (state := _state(pid)) not in states and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


def test_a_running_process_is_alive_and_no_pid_is_not():
    assert pid_alive(os.getpid()) and pid_alive(str(os.getpid()))
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)


def test_a_killed_orphan_is_dead_whether_or_not_pid_1_reaps_it():
    # The shell exits at once: its background sleep is an orphan, as a
    # controller is once `invoke cluster.start` has returned.
    out = subprocess.run(
        ["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
    ).stdout
    pid = int(out)
    assert pid_alive(pid)
    os.kill(pid, signal.SIGKILL)
    # Reaped (gone) or left a zombie: both are dead.
    assert _wait_state(pid, {"Z", "X", None}) in {"Z", "X", None}
    assert not pid_alive(pid)


def test_a_killed_child_not_yet_waited_for_is_dead():
    child = subprocess.Popen(["sleep", "600"])
    try:
        child.kill()
        assert _wait_state(child.pid, {"Z"}) == "Z"
        assert not pid_alive(child.pid)
    finally:
        child.wait(timeout=30)
    assert not pid_alive(child.pid)
