"""Figure 2: peak summed worker PSS and available-memory drop, fleetcv against its peers.

Runs on the laptop, driving the bench's local engines and a loky pool of
the same size on one generated data set (>= 200 MB; 50 MB when quick).
`_fit_working_memory` runs on an engine.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

from fleetcv.devtools.bench.peers import PEERS, started
from fleetcv.devtools.bench.sampling import (
    PssSampler,
    loky_pids,
    sum_pss,
    with_children,
)
from fleetcv.devtools.bench.searches import fleet_search, plain_grid, sklearn_search
from runtime.folds import persist_splits

#: Data rows (full, quick), of MEMORY_FEATURES float64 features: 200 MB, 50 MB.
MEMORY_ROWS = (100_000, 25_000)
MEMORY_FEATURES = 250
#: Rounds of every side, one after another (full, quick).
ROUNDS = (3, 1)
#: The searched grid of LogisticRegression.
MEMORY_GRID = {"C": [0.01, 0.1, 1.0, 10.0]}


def bench_memory(client, n: int, quick: bool, work: Path, log) -> dict:
    """Peak summed worker PSS and available-memory drop, both sides.

    Parameters
    ----------
    client : ipyparallel.Client
        Connected to the bench's N local engines.
    n : int
        Engines, and loky workers.
    quick : bool
        The smaller data set.
    work : Path
        Scratch directory (folds, run directories).
    log : callable
        Progress lines.

    Returns
    -------
    dict
        Each side's peak, baseline, drop, wall and samples; fleetcv's memory
        budget and whether it stayed within it; the PSS ratio.
    """
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import ShuffleSplit

    rows = MEMORY_ROWS[quick]
    X, y = make_classification(
        n_samples=rows, n_features=MEMORY_FEATURES, n_informative=20, random_state=0
    )
    X = np.ascontiguousarray(X)
    nbytes = X.nbytes + y.nbytes
    splitter = ShuffleSplit(n_splits=3, test_size=0.25, random_state=0)
    est = LogisticRegression(max_iter=30)
    log(
        f"memory: data {nbytes / 1e6:.0f} MB, LogisticRegression x "
        f"{len(MEMORY_GRID['C'])} C x 3 folds"
    )
    split = persist_splits(X, y, splitter, {"bench": "memory", "rows": rows}, work)
    sides = {
        "fleetcv": lambda: _fleet_memory(client, est, split, work),
        "loky": lambda: _loky_memory(n, est, splitter, X, y),
        **{
            name: functools.partial(_peer_memory, name, client, n, est, splitter, X, y)
            for name in PEERS
            if name != "loky"
        },
    }
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(ROUNDS[quick]):
        for name, side in sides.items():
            runs[name].append(side())
    fleet, loky, *others = (_median_run(runs[name]) for name in sides)
    peers = dict(zip(list(sides)[2:], others, strict=True))
    # "Model size" per engine: the fitted model (coef_ and intercept_) plus
    # the most that one fit and its two scorings allocate on top of the
    # mapped data (gradients, predictions: O(rows) arrays any worker needs).
    model_bytes = 8 * (MEMORY_FEATURES + 1)
    work_bytes = _fit_working_bytes(client, est, split)
    budget = nbytes + fleet["baseline_sum_pss"] + n * (model_bytes + work_bytes)
    return {
        "model_bytes": model_bytes,
        "fit_working_bytes": work_bytes,
        "data_bytes": nbytes,
        "n_workers": n,
        "fleetcv": fleet,
        "sklearn_loky": loky,
        # The other peers, counted as loky is: every process each runs per worker.
        "peers": peers,
        "fleetcv_budget_bytes": budget,
        "fleetcv_within_budget": fleet["peak_sum_pss"] <= budget,
        "pss_ratio_fleetcv_over_loky": fleet["peak_sum_pss"] / loky["peak_sum_pss"]
        if loky["peak_sum_pss"]
        else None,
    }


def _median_run(runs: list[dict]) -> dict:
    """The run of median peak PSS, with every run's peak (`peak_runs`)."""
    peaks = [r["peak_sum_pss"] for r in runs]
    median = sorted(runs, key=lambda r: r["peak_sum_pss"])[(len(runs) - 1) // 2]
    return {**median, "peak_runs": peaks}


def _fleet_memory(client, est, split, work: Path) -> dict:
    """The fleetcv side: the engines' summed PSS during the search."""
    # Every process fleetcv runs per engine: the engines and anything they
    # started (ipyparallel's nanny, when enabled), as loky's side counts its
    # workers and its resource tracker.
    engine_pids = peer_pids("ipyparallel", client)
    return _sampled(
        lambda: engine_pids,
        lambda: fleet_search(
            client.load_balanced_view(),
            est,
            plain_grid(MEMORY_GRID),
            split,
            work / "runs",
            "memory",
        ),
    )


def _loky_memory(n: int, est, splitter, X, y) -> dict:
    """The scikit-learn side: the loky workers' summed PSS during GridSearchCV."""
    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Warm the loky pool first so its workers exist and can be baselined.
        Parallel(n_jobs=n)(delayed(time.sleep)(0.01) for _ in range(2 * n))
        return _sampled(
            loky_pids, lambda: sklearn_search(est, MEMORY_GRID, splitter, n).fit(X, y)
        )


def _peer_memory(name: str, client, n: int, est, splitter, X, y) -> dict:
    """A peer's workers' summed PSS during the same GridSearchCV (see `peer_pids`)."""
    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning

    with (
        warnings.catch_warnings(),
        started(name, n, client) as backend,
        backend(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The workers up first, so that the baseline counts them.
        Parallel(n_jobs=n)(delayed(time.sleep)(0.2) for _ in range(2 * n))
        # Asked once where the workers are fixed (the sampler's thread must
        # not use the client the search uses); Ray starts workers as needed.
        first = peer_pids(name, client)
        return _sampled(
            (lambda: peer_pids(name)) if name == "ray" else (lambda: first),
            lambda: sklearn_search(est, MEMORY_GRID, splitter, n).fit(X, y),
        )


def peer_pids(name: str, client=None) -> list[int]:
    """The processes peer `name` runs for its workers, alive now.

    ipyparallel: the engines (the bench's own, fleetcv's side too) and what
    they started. dask: each worker and its
    nanny. Ray: its worker processes (ray::IDLE, ray::<task>) and the raylet,
    which holds the object store that the workers' arguments go through.
    """
    if name == "ipyparallel":
        from runtime.probe import engine_probe

        return with_children(
            [p["pid"] for p in client[:].apply_async(engine_probe).get()]
        )
    if name == "dask":
        import os

        from distributed import get_client

        workers = list(get_client().run(os.getpid).values())
        return workers + [psutil.Process(w).ppid() for w in workers]
    if name == "ray":
        out = []
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(p.cmdline()).strip()
                # A worker names itself ray::IDLE or ray::<task>; the agents
                # (ray::DashboardAgent...) serve the node, not the workers.
                worker = cmd.startswith("ray::") and not cmd.endswith("Agent")
                if worker or "/raylet/raylet " in cmd:
                    out.append(p.pid)
        return out
    raise ValueError(f"no worker processes known for {name!r}")


def _sampled(pids: Callable[[], list[int]], run: Callable[[], object]) -> dict:
    """Run `run` while sampling the summed PSS of `pids()`: one side's figures.

    Parameters
    ----------
    pids : callable
        The side's worker pids, asked again at every sample.
    run : callable
        The search, run to its end.

    Returns
    -------
    dict
        `peak_sum_pss`, `baseline_sum_pss` (before `run`), `available_drop`,
        `wall` (seconds of `run`) and the `samples`.
    """
    baseline = sum_pss(pids())
    before = psutil.virtual_memory().available
    with PssSampler(pids) as sampler:
        t = time.perf_counter()
        run()
        wall = time.perf_counter() - t
    return {
        "peak_sum_pss": sampler.peak_pss(),
        "baseline_sum_pss": baseline,
        "available_drop": sampler.available_drop(before),
        "wall": wall,
        "samples": sampler.samples,
    }


def _fit_working_bytes(client, est, split) -> int:
    """The most that one candidate's `evaluate` allocates on an engine."""
    view = client.load_balanced_view()
    # Absolute: a relative name is resolved against the engine's workdir.
    ref = str(split.fold_path(0).resolve())
    return max(
        view.apply_async(
            _fit_working_memory, fold_ref=ref, estimator=est, params=p
        ).get()
        for p in plain_grid(MEMORY_GRID)
    )


def _fit_working_memory(**evaluate_kwargs) -> int:
    """Peak bytes that one `evaluate` allocates (runs on an engine).

    tracemalloc sees numpy's buffers (numpy reports them to it) and Python
    objects, not the memory-mapped fold, which is the data's own budget.
    """
    import tracemalloc

    from runtime.worker import evaluate, load_fold_cached

    load_fold_cached(evaluate_kwargs["fold_ref"])  # the mapping is not the fit's
    tracemalloc.start()
    try:
        evaluate(**evaluate_kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
