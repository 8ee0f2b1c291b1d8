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
   over SSH when the test cluster can be built and a remote layer is given.

Every raw figure goes to bench/results.json; BENCHMARKS.md and a PNG are
regenerated from it.

Modules, one figure or step each: `run` (the entry point `run_bench`, and
`summary_lines` for the console), `reference` (figures 1 and 4), `hosts`
(figure 4 over SSH), `memory`, `dispatch`, `environment` (machine and thread
pools), `searches` (one search on each side and what its journal says),
`sampling` (PSS and CPU of processes), `plot` and `markdown` (the PNG and
BENCHMARKS.md).
"""

from runtime.devtools.bench.run import run_bench, summary_lines

__all__ = ["run_bench", "summary_lines"]
