"""`invoke bench`: fleetcv against scikit-learn's own parallel search, side by side.

Runs on the laptop, in one process tree: a local fleetcv cluster of N
engines and scikit-learn's loky pool of N workers, on the same machine, the
same folds and the same BLAS thread settings (one thread per worker on both
sides, which is what loky itself picks for n_jobs = cores). Four figures:

1. reference search wall time (median of timed runs after a warm-up) against
   GridSearchCV(n_jobs=N), and the sequential limit (n_jobs=1 time / N);
2. memory: summed PSS of the worker processes, sampled every 100 ms, and the
   host's available-memory drop, on a data set of >= 200 MB;
3. dispatch: tiny tasks per second with the journal on;
4. scale: the reference search on 1..N engines, and on N namespace hosts
   over SSH when the test cluster can be built and backends are given.

Every raw figure goes to bench/results.json; BENCHMARKS.md and a PNG are
regenerated from it.

Beside them, the tools a user would pick instead (`peers`: loky,
ipyparallel's joblib backend, dask, Ray) on figures 1 and 3; figure 5, the
smarter searches (`smarter`); figure 6, the fixed cost of a 2-fit search as
whole processes, warm and cold (`fixed`, `tiny_search`); figure 7, the
controller at 8..256 engines on sleeping fits (`scale`).

Modules, one figure or step each: `run` (the entry point `run_bench`, and
`summary_lines` for the console), `reference` (figures 1 and 4), `hosts`
(figure 4 over SSH), `memory`, `dispatch`, `environment` (machine and thread
pools), `searches` (one search on each side and what its journal says),
`sampling` (PSS and CPU of processes), `plot`, `markdown` and
`peer_markdown` (the PNG and BENCHMARKS.md).
"""

__all__ = ["run_bench", "summary_lines"]


def __getattr__(name: str):
    # Loaded on first use: a peer's timed process (tiny_search) imports
    # fleetcv.devtools.bench.peers, and must not pay for the whole bench.
    if name in __all__:
        from fleetcv.devtools.bench import run

        return getattr(run, name)
    raise AttributeError(f"module 'fleetcv.devtools.bench' has no attribute {name!r}")
