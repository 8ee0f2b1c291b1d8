"""`python -m runtime.devtools.bench.tiny_search PEER MODE N [ADDRESS]`: a peer's 2-fit search.

The fixed cost of a search, as a whole process, for the tools beside
fleetcv: import, connect to a running cluster (`warm`, at ADDRESS) or start
one and stop it (`cold`), fit GridSearchCV(DummyClassifier) on iris with one
candidate x 2 folds, exit. fleetcv's side is `invoke search` on the same
search (runtime/devtools/bench/fixed.py).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run the tiny search on `argv[0]` (a peer), `argv[1]` (warm/cold), N; exit status."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import GridSearchCV, KFold

    peer, mode, n = argv[0], argv[1], int(argv[2])
    address = argv[3] if len(argv) > 3 else None
    X, y = load_iris(return_X_y=True)
    search = GridSearchCV(
        DummyClassifier(), {"strategy": ["prior"]}, cv=KFold(2), refit=False, n_jobs=n
    )
    with _backend(peer, mode, n, address):
        search.fit(X, y)
    return 0 if len(search.cv_results_["params"]) == 1 else 1


def _backend(peer: str, mode: str, n: int, address: str | None):
    import contextlib

    if peer == "loky":
        return contextlib.nullcontext()
    starts = {"ipyparallel": _ipyparallel, "dask": _dask, "ray": _ray}
    if peer not in starts:
        raise SystemExit(f"unknown peer {peer!r}; expected loky, {', '.join(starts)}")
    return starts[peer](mode, n, address)


def _ipyparallel(mode: str, n: int, address: str | None):
    import contextlib

    import ipyparallel as ipp
    import joblib

    @contextlib.contextmanager
    def run():
        if mode == "warm":
            client = ipp.Client(connection_info=address)
            cluster = None
        else:
            cluster = ipp.Cluster(n=n, log_level=40)
            client = cluster.start_and_connect_sync()
        try:
            client.wait_for_engines(n, timeout=120)
            client.load_balanced_view().register_joblib_backend(name="ipyparallel")
            with joblib.parallel_backend("ipyparallel", n_jobs=n):
                yield
        finally:
            client.close()
            if cluster is not None:
                cluster.stop_cluster_sync()

    return run()


def _dask(mode: str, n: int, address: str | None):
    import contextlib

    import joblib
    from distributed import Client, LocalCluster

    @contextlib.contextmanager
    def run():
        if mode == "warm":
            with Client(address), joblib.parallel_backend("dask", n_jobs=n):
                yield
        else:
            with (
                LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    dashboard_address=None,
                    silence_logs=50,
                ) as cluster,
                Client(cluster),
                joblib.parallel_backend("dask", n_jobs=n),
            ):
                yield

    return run()


def _ray(mode: str, n: int, address: str | None):
    import contextlib

    import joblib
    import ray
    from ray.util.joblib import register_ray

    @contextlib.contextmanager
    def run():
        if mode == "warm":
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=n,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        try:
            register_ray()
            with joblib.parallel_backend("ray", n_jobs=n):
                yield
        finally:
            ray.shutdown()

    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
