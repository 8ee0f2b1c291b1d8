"""report.html and the plots, drawn by a process of their own after a run.

matplotlib's import and the figures take most of a small search's wall time
(about a second, against a few tenths for the fits of a 2-fit search): the
run's command prints its report, writes results.json and exits with its
status, and `python -m fleetcv.report.background RUN_DIR` draws the rest in
the run directory meanwhile. `wait` blocks until it is done (the tests, and
anything that reads report.html right after a run).

Two renderers of one run directory (a run resumed while the previous one
still draws) take turns on an exclusive lock, so the later one draws last,
from the later results.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

#: The pid of the last renderer started for a run directory.
PID_FILE = "render.pid"
#: What the renderer prints (a plot that could not be drawn, a traceback).
LOG_FILE = "render.log"
_LOCK_FILE = ".render.lock"
#: Seconds a renderer waits for the one before it; then it draws anyway.
LOCK_TIMEOUT = 300.0


def start(run_dir: str | os.PathLike) -> int:
    """Start drawing report.html and the plots of `run_dir`; return the renderer's pid.

    Parameters
    ----------
    run_dir : path
        A run directory whose results are written.

    Returns
    -------
    int
        The pid of the detached renderer (recorded in render.pid).
    """
    rdir = Path(run_dir)
    with open(rdir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetcv.report.background", str(rdir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal, meant for the run's
            # command, does not stop the drawing of what that command wrote.
            start_new_session=True,
            env={**os.environ, "MPLBACKEND": "Agg"},
        )
    (rdir / PID_FILE).write_text(f"{proc.pid}\n")
    # Reaped in a thread: a long-lived caller (a notebook) keeps no zombie.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid


def running(run_dir: str | os.PathLike) -> bool:
    """Whether the last renderer started for `run_dir` is still drawing."""
    from runtime.launcher import recorded_pid

    return (
        recorded_pid(Path(run_dir) / PID_FILE, "fleetcv.report.background") is not None
    )


def wait(run_dir: str | os.PathLike, timeout: float = 120.0) -> bool:
    """Wait until the renderer of `run_dir` is done (True), or `timeout` s (False)."""
    deadline = time.monotonic() + timeout
    while running(run_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def render(run_dir: str | os.PathLike) -> dict:
    """Draw the plots and report.html of `run_dir` now, after any renderer before.

    Returns
    -------
    dict
        `plots` and `report`, as `fleetcv.report.html.finish_run`.
    """
    from fleetcv.report.html import finish_run

    rdir = Path(run_dir)
    with open(rdir / _LOCK_FILE, "a") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while time.monotonic() < deadline:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.1)
        try:
            return finish_run(rdir, log=lambda line: print(line, flush=True))
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    """`python -m fleetcv.report.background RUN_DIR`: draw that run's pages."""
    import gc

    out = render(argv[0])
    print(f"wrote {out['report']} and {len(out['plots'])} plots", flush=True)
    # Done: the exit need not collect every object matplotlib's and
    # scikit-learn's imports made (tenths of a second, as in tasks.py).
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
