"""Figure 7: the controller at scale, engines far beyond the cores, fits that sleep.

Runs on the laptop. Fits that sleep a set time (`Sleep`) leave the cores
idle, so what limits a run of many engines is the hub: ipyparallel's
controller and scheduler, and fleetcv's driver (submitting, collecting,
journaling). For each engine count, each engine gets `TASKS_PER_ENGINE`
tasks of one fit length; efficiency = ideal wall (tasks x fit / engines) /
measured wall. Beside it: tasks per second, the driver's and the
controller's CPU seconds, and the PSS of an idle engine. dask.distributed
and Ray run the same (GridSearchCV over the same sleeping fits, one thread
per worker, `peers.started`) at the counts this machine's memory allows them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import psutil
from sklearn.base import BaseEstimator, ClassifierMixin

from fleetcv.devtools.bench.peers import started
from fleetcv.devtools.bench.sampling import cpu_seconds, sum_pss, with_children
from fleetcv.devtools.bench.searches import fleet_search, journal
from fleetcv.dispatch import cluster as cl
from runtime.folds import persist_splits

#: Engine counts: (full, quick). 256 only where memory allows (see `_fits`).
ENGINES = ((8, 32, 128, 256), (8,))
#: Seconds each fit sleeps: (full, quick).
FIT_SECONDS = ((1.0, 0.1, 0.01), (0.1,))
#: Tasks per engine in one run (ideal wall = this x the fit's length).
TASKS_PER_ENGINE = 4
#: The peers run at scale, and their worker counts: (full, quick). A dask
#: worker (with its nanny) holds ~100 MB, a Ray worker ~75 MB.
SCALE_PEERS = ("dask", "ray")
PEER_WORKERS = ((8, 32), (8,))
#: Seconds to wait for every engine of a large cluster to register.
START_TIMEOUT = 900.0


class Sleep(ClassifierMixin, BaseEstimator):
    """A classifier whose fit sleeps `seconds` and that predicts the first class."""

    def __init__(self, seconds=0.1):
        self.seconds = seconds

    def fit(self, X, y):
        """Sleep `seconds`; remember the classes."""
        time.sleep(self.seconds)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        """The first class for every row."""
        return np.full(len(X), self.classes_[0])


def bench_scale(cfg_of, quick: bool, work: Path, log) -> dict:
    """Figure 7: fleetcv (and dask and Ray) at 8..256 workers on sleeping fits.

    Parameters
    ----------
    cfg_of : callable
        Engine count -> the hosts config of a local cluster of that size.
    quick : bool
        8 engines and 0.1 s fits only.
    work : Path
        Scratch directory (folds, run directories).
    log : callable
        Progress lines.

    Returns
    -------
    dict
        `fleetcv`: one row per (engines, fit seconds); `dask`, `ray`: the
        same at `PEER_WORKERS`; `skipped`: engine counts left out for memory.
    """
    rng = np.random.RandomState(0)
    X, y = rng.rand(64, 4), rng.randint(0, 2, 64)
    from sklearn.model_selection import ShuffleSplit

    splitter = ShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    split = persist_splits(X, y, splitter, {"bench": "scale"}, work)
    rows, skipped, per_engine = [], [], None
    for k in ENGINES[quick]:
        if per_engine is not None and not _fits(k, per_engine):
            skipped.append(k)
            log(f"scale: {k} engines skipped: not enough memory")
            continue
        cfg = cfg_of(k)
        t = time.perf_counter()
        try:
            cl.start(cfg, n_local=k, timeout=START_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - reported in BENCHMARKS.md, the bench goes on
            skipped.append(k)
            log(f"scale: {k} engines did not start: {exc}")
            cl.stop(cfg)
            continue
        started = time.perf_counter() - t
        k_rows, private = _fleet_rows(cfg, k, split, work, quick, log)
        per_engine = max(per_engine or 0, private)
        rows += [{**row, "start_seconds": started} for row in k_rows]
    peers = {
        name: [
            row
            for k in PEER_WORKERS[quick]
            for row in _peer_rows(name, k, X, y, splitter, quick, log)
        ]
        for name in SCALE_PEERS
    }
    return {
        "tasks_per_engine": TASKS_PER_ENGINE,
        "fleetcv": rows,
        **peers,
        "skipped": skipped,
    }


def _fleet_rows(cfg, k: int, split, work: Path, quick: bool, log) -> tuple[list, int]:
    """Rows of fleetcv at `k` engines, one per fit length, on the cluster `cfg` runs.

    Stops that cluster. Returns the rows and the largest private memory of
    one of its engines (what the next, larger cluster is sized by).
    """
    client = cl.connect(cfg)
    rows = []
    try:
        cl.wait_for_engines(client, k)
        pids = cl.local_engine_pids(cfg)
        idle = sum_pss(pids) / len(pids)
        private = _private(pids)
        # Untimed: every engine imports this module and maps the fold once.
        fleet_search(
            client.load_balanced_view(),
            Sleep(0.0),
            [{"seconds": 0.0}] * (2 * k),
            split,
            work / "runs",
            f"scale{k}-warmup",
        )
        for f in FIT_SECONDS[quick]:
            row = _fleet_row(client, cfg, k, f, split, work)
            row["idle_engine_pss"] = idle
            rows.append(row)
            log(
                f"scale: {k} engines, {f:g} s fits: efficiency "
                f"{row['efficiency']:.3f}, {row['tasks_per_second']:.0f} tasks/s"
            )
    finally:
        client.close()
        cl.stop(cfg)
    return rows, private


def _private(pids: list[int]) -> int:
    """The largest private memory (USS) of one engine: what each more engine costs."""
    uss = []
    for pid in pids:
        try:
            uss.append(psutil.Process(pid).memory_full_info().uss)
        except psutil.Error:
            continue
    return max(uss, default=0)


def _fits(k: int, per_engine: int) -> bool:
    """Whether `k` engines of `per_engine` private bytes fit in 80% of available memory."""
    return k * per_engine < 0.8 * psutil.virtual_memory().available


def _fleet_row(client, cfg, k: int, f: float, split, work: Path) -> dict:
    """One timed fleetcv run of k x TASKS_PER_ENGINE fits of `f` seconds on `k` engines."""
    n_tasks = k * TASKS_PER_ENGINE
    cands = [{"seconds": f}] * n_tasks
    controller = [
        psutil.Process(p) for p in with_children([cl.recorded_controller_pid(cfg)])
    ]
    driver = [psutil.Process(os.getpid())]
    ctl0, drv0 = cpu_seconds(controller), cpu_seconds(driver)
    t = time.perf_counter()
    s = fleet_search(
        client.load_balanced_view(), Sleep(), cands, split, work / "runs", f"scale{k}"
    )
    wall = time.perf_counter() - t
    ideal = n_tasks * f / k
    return {
        "engines": k,
        "cores": os.cpu_count(),
        "fit_seconds": f,
        "n_tasks": n_tasks,
        "wall_seconds": wall,
        "ideal_seconds": ideal,
        "efficiency": ideal / wall,
        "tasks_per_second": n_tasks / wall,
        "controller_cpu_seconds": cpu_seconds(controller) - ctl0,
        "driver_cpu_seconds": cpu_seconds(driver) - drv0,
        "journal_lines": len(journal(s)),
    }


def _peer_rows(name: str, k: int, X, y, splitter, quick: bool, log) -> list[dict]:
    """The same sleeping fits through GridSearchCV on peer `name` with `k` workers.

    One peer instance per worker count, every fit length on it, as fleetcv's
    rows share one cluster per engine count.
    """
    from sklearn.model_selection import GridSearchCV

    rows = []
    n_tasks = k * TASKS_PER_ENGINE
    with started(name, k) as backend, backend():
        # Untimed: every worker up (each sleeps while the others start),
        # scikit-learn and this module imported in them.
        GridSearchCV(
            Sleep(), {"seconds": [0.2] * k}, cv=splitter, refit=False, n_jobs=k
        ).fit(X, y)
        for f in FIT_SECONDS[quick]:
            search = GridSearchCV(
                Sleep(), {"seconds": [f] * n_tasks}, cv=splitter, refit=False, n_jobs=k
            )
            t = time.perf_counter()
            search.fit(X, y)
            wall = time.perf_counter() - t
            ideal = n_tasks * f / k
            log(
                f"scale: {name} {k} workers, {f:g} s fits: efficiency {ideal / wall:.3f}"
            )
            rows.append(
                {
                    "workers": k,
                    "fit_seconds": f,
                    "n_tasks": n_tasks,
                    "wall_seconds": wall,
                    "efficiency": ideal / wall,
                    "tasks_per_second": n_tasks / wall,
                }
            )
    return rows
