"""Memory and CPU figures of worker processes, read with psutil.

Runs on the laptop, inside the bench's driver process: the sampled
processes (fleetcv engines, loky workers) are its children on this machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psutil

#: PSS sampling period, seconds.
SAMPLE_EVERY = 0.1


class PssSampler:
    """Sample the summed PSS of some processes and the host's available memory.

    Use as a context manager: a thread samples from `__enter__` to `__exit__`.

    Parameters
    ----------
    pids : callable
        Returns the pids to sum at each sample (processes may come and go).
    every : float
        Seconds between two samples.
    """

    def __init__(self, pids: Callable[[], list[int]], every: float = SAMPLE_EVERY):
        self.pids = pids
        self.every = every
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            total = sum_pss(self.pids())
            self.samples.append(
                {
                    "t": time.monotonic() - t0,
                    "sum_pss": total,
                    "available": psutil.virtual_memory().available,
                }
            )
            self._stop.wait(self.every)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_pss(self) -> int:
        """Largest summed PSS seen."""
        return max((s["sum_pss"] for s in self.samples), default=0)

    def available_drop(self, before: int) -> int:
        """Largest drop of available memory below `before`."""
        return max((before - s["available"] for s in self.samples), default=0)


def with_children(pids: list[int]) -> list[int]:
    """The given pids and every descendant of theirs alive now.

    Parameters
    ----------
    pids : list of int
        Processes whose children count too (gone ones are skipped).

    Returns
    -------
    list of int
        `pids` followed by their descendants.
    """
    out = list(pids)
    for pid in pids:
        try:
            out += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def sum_pss(pids: list[int]) -> int:
    """Summed proportional set size, bytes (gone or unreadable processes count 0).

    Parameters
    ----------
    pids : list of int
        The processes to sum.

    Returns
    -------
    int
        Bytes.
    """
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of psutil processes, so far (gone ones count 0).

    Parameters
    ----------
    procs : list of psutil.Process
        The processes to sum.

    Returns
    -------
    float
        Seconds.
    """
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def loky_pids() -> list[int]:
    """Pids of this process's loky (joblib) workers and resource tracker.

    Returns
    -------
    list of int
        Descendants whose command line names loky or joblib.
    """
    me = psutil.Process()
    return [
        p.pid
        for p in me.children(recursive=True)
        if "loky" in " ".join(p.cmdline()) or "joblib" in " ".join(p.cmdline())
    ]
