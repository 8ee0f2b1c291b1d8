"""The tools a user would pick instead of fleetcv, as joblib backends of GridSearchCV.

Runs on the laptop (bench only; dask, distributed and ray are in
requirements-dev.txt, never in what a host installs). Each peer runs
scikit-learn's own GridSearchCV with N workers of one thread each:

- `loky`: scikit-learn's default, `n_jobs=N`.
- `ipyparallel`: ipyparallel's joblib backend
  (`view.register_joblib_backend`), on the bench's own N engines: the same
  processes as fleetcv's side, so only the scheduling differs.
- `dask`: a distributed LocalCluster (N worker processes, 1 thread each,
  no dashboard) and joblib's `dask` backend.
- `ray`: a local Ray instance (`num_cpus=N`) and `ray.util.joblib`.

A peer is started before its timed run and stopped after it (`started`): an
idle Ray instance keeps a few processes busy, which would slow the sides
measured beside it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

from runtime.launcher import ENGINE_THREAD_VARS, patched_environ

#: The peers, in the order of the tables.
PEERS = ("loky", "ipyparallel", "dask", "ray")
#: What the peers' worker processes get: one BLAS/OpenMP thread each, set
#: through the same variables as a fleetcv engine's.
ONE_THREAD = {var: "1" for var in ENGINE_THREAD_VARS}


@contextlib.contextmanager
def kept_environ() -> Iterator[None]:
    """Restore the whole of os.environ after the block.

    Peers started in this process change it for good: dask's LocalCluster
    sets OMP/MKL/OPENBLAS_NUM_THREADS and PYTHONHASHSEED, `ray.init` sets
    PYTHONBREAKPOINT. The sides run after them (fleetcv's whole processes,
    the warm driver's callers, whose start-up variables must equal the warm
    driver's) would inherit them.
    """
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def started(
    name: str, n: int, client=None, address: str | None = None
) -> Iterator[Callable]:
    """Peer `name` with `n` workers; yields `backend()`, a joblib backend context.

    Parameters
    ----------
    name : str
        One of `PEERS`.
    n : int
        Workers.
    client : ipyparallel.Client, optional
        The bench's engines (for `ipyparallel`).
    address : str, optional
        A running cluster to connect to instead of starting one: an
        ipyparallel client connection file, a dask scheduler address, a Ray
        address ("auto").

    Yields
    ------
    callable
        `backend()` -> a context manager in which joblib (GridSearchCV's
        n_jobs) runs on the peer.
    """
    import joblib

    # In-process peers leave their variables behind: not for the sides after them.
    with kept_environ():
        if name == "loky":
            yield lambda: joblib.parallel_backend(
                "loky", n_jobs=n, inner_max_num_threads=1
            )
        elif name == "ipyparallel":
            with _ipyparallel_client(n, client, address) as ipp_client:
                ipp_client.load_balanced_view().register_joblib_backend(
                    name="ipyparallel"
                )
                yield lambda: joblib.parallel_backend("ipyparallel", n_jobs=n)
        elif name == "dask":
            from distributed import Client, LocalCluster

            with contextlib.ExitStack() as stack:
                if address is None:
                    stack.enter_context(patched_environ(ONE_THREAD))
                    address = stack.enter_context(
                        LocalCluster(
                            n_workers=n,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=None,
                            silence_logs=50,
                        )
                    )
                stack.enter_context(Client(address))
                yield lambda: joblib.parallel_backend("dask", n_jobs=n)
        elif name == "ray":
            import ray
            from ray.util.joblib import register_ray

            where = {"address": address} if address else {"num_cpus": n}
            with patched_environ(ONE_THREAD):
                ray.init(
                    **where,
                    include_dashboard=False if not address else None,
                    log_to_driver=False,
                    configure_logging=False,
                )
            try:
                register_ray()
                yield lambda: joblib.parallel_backend("ray", n_jobs=n)
            finally:
                ray.shutdown()
        else:
            raise ValueError(f"unknown peer {name!r}; expected one of {PEERS}")


@contextlib.contextmanager
def _ipyparallel_client(n: int, client, address: str | None):
    """The bench's client, one connected to `address`, or a cluster started here."""
    import ipyparallel as ipp

    if client is not None:
        yield client
        return
    cluster = None
    if address is not None:
        client = ipp.Client(connection_info=address)
    else:
        cluster = ipp.Cluster(n=n, log_level=40)
        client = cluster.start_and_connect_sync()
    try:
        client.wait_for_engines(n, timeout=120)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.stop_cluster_sync()


def worker_threads(backend: Callable, n: int) -> list[int]:
    """BLAS threads in each of the peer's workers (threadpoolctl), as seen by its tasks."""
    from joblib import Parallel, delayed

    with backend():
        return Parallel(n_jobs=n)(delayed(_blas_threads)(0.2) for _ in range(n))


def _blas_threads(linger: float) -> int:
    from threadpoolctl import threadpool_info

    # A moment's wait, so that the n calls land on n workers, not one.
    time.sleep(linger)
    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
        default=0,
    )


def spread(runs: list[float]) -> dict:
    """Median, min, max and every run of a side's timed rounds."""
    import statistics

    return {
        "median": statistics.median(runs),
        "min": min(runs),
        "max": max(runs),
        "runs": list(runs),
    }


def peer_figures(peer_runs: dict[str, list[float]], fleet_runs: list[float]) -> dict:
    """Each peer against fleetcv: every side's spread, the ratios to fleetcv's median.

    Parameters
    ----------
    peer_runs : dict
        Peer name -> its timed rounds (seconds).
    fleet_runs : list of float
        fleetcv's timed rounds.

    Returns
    -------
    dict
        `fleetcv` and each peer (`spread`), `ratio` (fleetcv's median over each
        peer's), `best_peer` (the lowest median) and `ratio_to_best`.
    """
    sides = {name: spread(runs) for name, runs in peer_runs.items()}
    fleet = spread(fleet_runs)
    best = min(sides, key=lambda k: sides[k]["median"])
    return {
        "fleetcv": fleet,
        "peers": sides,
        "ratio": {k: fleet["median"] / v["median"] for k, v in sides.items()},
        "best_peer": best,
        "ratio_to_best": fleet["median"] / sides[best]["median"],
    }
