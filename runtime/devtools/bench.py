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
4. scale: the reference search on 1..N engines.

Every raw figure goes to bench/results.json; BENCHMARKS.md and a PNG are
regenerated from it.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.dispatch import cluster as cl
from runtime.dispatch.search import DistributedSearch
from runtime.engine.folds import persist_splits
from runtime.spec import load_data, load_search_spec, parse_hosts

REPO = Path(__file__).resolve().parents[2]
REFERENCE_SPEC = REPO / "searches" / "digits_svc.yml"
#: Ports of the bench's own cluster, apart from a user's running one.
BENCH_PORTS = [30400, 30439]
#: The namespace hosts of the multi-host scale run, and their controller's
#: ports (apart from the tests' own: prefix fmh/fcv, 10.203-204.0).
HOSTS_PREFIX, HOSTS_SUBNET = "fbn", "10.205.0"
BENCH_HOST_PORTS = (30500, 30539)
#: PSS sampling period, seconds.
SAMPLE_EVERY = 0.1
#: Sizes: (full, quick).
TIMED_RUNS = (5, 1)
MEMORY_ROWS = (100_000, 25_000)  # x 250 float64 features: 200 MB, 50 MB
MEMORY_FEATURES = 250
DISPATCH_TASKS = (2000, 500)
#: The targets of issue 6, checked (not asserted) in BENCHMARKS.md.
TARGET_WALL_RATIO = 0.95
TARGET_EFFICIENCY = 0.95
TARGET_DISPATCH = 400.0
TARGET_MEMORY_VS_LOKY = 0.5


def _grid(quick: bool) -> dict:
    gammas = np.logspace(-4, 0, 5)
    return {"C": np.logspace(-1, 2, 4), "gamma": gammas[:2] if quick else gammas}


def _plain_grid(grid: dict) -> list[dict]:
    from sklearn.model_selection import ParameterGrid

    return [{k: float(v) for k, v in p.items()} for p in ParameterGrid(grid)]


class PssSampler:
    """Sample the summed PSS of some processes and the host's available memory."""

    def __init__(self, pids: Callable[[], list[int]], every: float = SAMPLE_EVERY):
        self.pids = pids
        self.every = every
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        t0 = time.monotonic()
        while not self._stop.is_set():
            total = _sum_pss(self.pids())
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


def _with_children(pids: list[int]) -> list[int]:
    import psutil

    out = list(pids)
    for pid in pids:
        try:
            out += [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def _sum_pss(pids: list[int]) -> int:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _cpu_seconds(procs: list) -> float:
    """User + system CPU seconds of psutil processes, so far (gone ones count 0)."""
    import psutil

    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _loky_pids() -> list[int]:
    import psutil

    me = psutil.Process()
    return [
        p.pid
        for p in me.children(recursive=True)
        if "loky" in " ".join(p.cmdline()) or "joblib" in " ".join(p.cmdline())
    ]


def _fleet_search(
    view, estimator, candidates, split, run_root: Path, tag: str, expected=None
) -> DistributedSearch:
    run_dir = run_root / f"{tag}-{time.monotonic_ns()}"
    s = DistributedSearch(view, estimator, candidates=candidates, run_dir=run_dir)
    s.launch(split, expected_times=expected).wait()
    if s.n_done != s.n_tasks:
        raise RuntimeError(f"bench search {tag} did not finish: {s.report()}")
    return s


def _sklearn_search(estimator, grid: dict, splitter, n_jobs: int):
    """GridSearchCV doing the work fleetcv does: train scores, no refit.

    A fleetcv search ends with cv_results_, not a model fitted on all rows.
    """
    from sklearn.model_selection import GridSearchCV

    return GridSearchCV(
        estimator,
        grid,
        cv=splitter,
        n_jobs=n_jobs,
        return_train_score=True,
        refit=False,
    )


def bench_reference(client, n: int, quick: bool, work: Path, log) -> dict:
    """Figure 1 (and the data for figure 4)."""
    import psutil
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    from runtime.rundir.results import expected_times

    spec = load_search_spec(REFERENCE_SPEC)
    X, y = load_data(spec)
    splitter = spec.cv.splitter()
    split = persist_splits(X, y, splitter, spec.cv.as_dict(), work)
    grid = _grid(quick)
    cands = _plain_grid(grid)
    runs = TIMED_RUNS[quick]
    view = client.load_balanced_view()

    def sequential_run() -> float:
        # One BLAS thread, as in each loky worker and each engine: the limit
        # is N times one worker's speed.
        t = time.perf_counter()
        with threadpool_limits(1):
            _sklearn_search(SVC(), grid, splitter, 1).fit(X, y)
        return time.perf_counter() - t

    # CPU seconds of each side's workers per round (None: loky replaced its
    # pool during the round, so part of the work went unseen).
    sk_cpu: list[float | None] = []
    fl_cpu: list[float] = []
    sk_workers: list = []

    def sklearn_run() -> float:
        t = time.perf_counter()
        before = _cpu_seconds(sk_workers)
        _sklearn_search(SVC(), grid, splitter, n).fit(X, y)
        wall = time.perf_counter() - t
        used = _cpu_seconds(sk_workers) - before
        same_pool = set(_loky_pids()) == {p.pid for p in sk_workers}
        sk_cpu.append(used if same_pool else None)
        return wall

    log(
        f"reference: {len(cands)} candidates x {split.n_folds} folds; warm-up, then "
        f"{runs} rounds of sequential sklearn, GridSearchCV(n_jobs={n}) and fleetcv "
        f"on {n} engines"
    )
    # Untimed warm-up: loky pool started, imports done.
    _sklearn_search(SVC(), grid, splitter, n).fit(X, y)
    # joblib reuses the pool, so these are the processes that do the work of
    # every timed run (checked after each).
    sk_workers += [psutil.Process(p) for p in _loky_pids()]
    warm = _fleet_search(view, SVC(), cands, split, work / "runs", "warmup")
    # The warm-up's journal is what a real second run finds in runs/: the
    # timings that let the slowest candidates start first.
    expected = expected_times(warm._records)

    busy: list[float] = []
    inside: list[float] = []
    gaps: list[float] = []
    messages: list[int] = []

    engines = [psutil.Process(p) for p in {r["pid"] for r in warm._records}]

    def fleet_run() -> float:
        t = time.perf_counter()
        before = _cpu_seconds(engines)
        s = _fleet_search(view, SVC(), cands, split, work / "runs", "ref", expected)
        wall = time.perf_counter() - t
        fl_cpu.append(_cpu_seconds(engines) - before)
        inside.append(_inside_seconds(s._records))
        # Share of the N engines' time (N x wall) spent inside `evaluate`; the
        # rest is what fleetcv adds around the fits: messages between driver,
        # controller and engines, the start and the end of the run.
        busy.append(inside[-1] / (n * wall))
        gaps.append(_task_gap(s._records))
        messages.append(s.n_messages)
        return wall

    # Interleaved rounds, the order rotating each round: this machine's speed
    # drifts by several percent within minutes (a shared VM), and a drift
    # must hit every side alike, not the one measured last.
    sides = [
        ("sequential", sequential_run),
        ("sklearn", sklearn_run),
        ("fleetcv", fleet_run),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    for r in range(runs):
        for name, fn in sides[r % 3 :] + sides[: r % 3]:
            # Each side times itself, without the bench's own bookkeeping.
            times[name].append(fn())
        log(
            f"reference round {r + 1}/{runs}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
        )
    sequential = statistics.median(times["sequential"])
    sk_wall, sk_times = statistics.median(times["sklearn"]), times["sklearn"]
    fl_wall, fl_times = statistics.median(times["fleetcv"]), times["fleetcv"]
    round_ratios = [f / k for f, k in zip(fl_times, sk_times, strict=True)]
    # fleetcv's wall, had its engines never waited and all finished together:
    # its fits alone, per round (a lower bound).
    fits_only = [i / n / k for i, k in zip(inside, sk_times, strict=True)]

    limit = sequential / n
    scale = []
    for k in range(1, n + 1):
        v = client.load_balanced_view(targets=client.ids[:k])
        t = time.perf_counter()
        s = _fleet_search(v, SVC(), cands, split, work / "runs", f"scale{k}", expected)
        wall = time.perf_counter() - t
        scale.append(
            {
                "engines": k,
                "wall": wall,
                "ideal": sequential / k,
                "efficiency": (sequential / k) / wall,
                "evaluate_seconds": _inside_seconds(s._records),
            }
        )
        log(
            f"scale: {k} engines {wall:.2f} s, efficiency {(sequential / k) / wall:.3f}"
        )
    hosts = bench_hosts(n, cands, X, y, spec, expected, sequential, work, log)
    return {
        "hosts": hosts,
        "n_candidates": len(cands),
        "n_folds": split.n_folds,
        "sequential_seconds": sequential,
        "fleetcv_engine_busy_fraction": busy,
        "fleetcv_evaluate_seconds": inside,
        "fleetcv_task_gap_seconds": gaps,
        "fleetcv_messages": messages,
        # efficiency = busy fraction / work inflation, exactly: what fleetcv
        # adds around the fits, and the fits themselves running slower.
        "fleetcv_work_inflation": statistics.median(inside) / sequential,
        "sequential_runs": times["sequential"],
        "round_ratios_fleetcv_over_sklearn": round_ratios,
        "fits_only_ratio_over_sklearn": statistics.median(fits_only),
        # Per round: the workers' CPU seconds, and their share of the cores
        # (CPU seconds / (N x wall)). wall = CPU / (N x share) on each side,
        # which splits the wall ratio into a CPU ratio and a share ratio.
        "sklearn_worker_cpu_seconds": sk_cpu,
        "fleetcv_engine_cpu_seconds": fl_cpu,
        "sklearn_worker_cpu_share": [
            None if c is None else c / (n * w)
            for c, w in zip(sk_cpu, sk_times, strict=True)
        ],
        "fleetcv_engine_cpu_share": [
            c / (n * w) for c, w in zip(fl_cpu, fl_times, strict=True)
        ],
        "limit_seconds": limit,
        "sklearn_wall_seconds": sk_wall,
        "sklearn_runs": sk_times,
        "fleetcv_wall_seconds": fl_wall,
        "fleetcv_runs": fl_times,
        "sklearn_efficiency": limit / sk_wall,
        "fleetcv_efficiency": limit / fl_wall,
        "wall_ratio_fleetcv_over_sklearn": fl_wall / sk_wall,
        "scale": scale,
    }


def _inside_seconds(records: list[dict]) -> float:
    """Summed time the engines spent inside `evaluate` (map the fold, fit, score)."""
    return sum(r["ended"] - r["started"] for r in records if "ended" in r)


def _task_gap(records: list[dict]) -> float:
    """Median seconds an engine spends between one message's last task and the next's first.

    That is ipyparallel's per-message machinery: the reply to the controller,
    the scheduler handing over the next message, the engine's kernel
    receiving it (py-spy of an engine shows ipykernel's send, flush and
    event loop). Tasks sent in one message follow each other without it.
    """
    by_pid: dict[int, list[dict]] = {}
    for r in records:
        if "ended" in r:
            by_pid.setdefault(r["pid"], []).append(r)
    gaps = []
    for recs in by_pid.values():
        recs.sort(key=lambda r: r["started"])
        gaps += [
            b["started"] - a["ended"]
            for a, b in itertools.pairwise(recs)
            if a.get("message") != b.get("message")
        ]
    return statistics.median(gaps) if gaps else 0.0


def bench_hosts(
    n: int, cands, X, y, spec, expected, sequential: float, work: Path, log
) -> dict:
    """Figure 4, over SSH: the reference search on N namespace hosts, one engine each.

    The hosts are the test cluster of testcluster.py (own network namespace,
    sshd and disk each; root only): engines started over SSH by fabfile.py,
    folds pushed with rsync, tasks over TCP. On one machine this measures
    what the hosts add (SSH-started engines, a network hop, a copy of the
    folds per host), not more cores.
    """
    from sklearn.svm import SVC

    from runtime.devtools import testcluster

    ok, reason = testcluster.available()
    if not ok:
        log(f"hosts: skipped ({reason})")
        return {"skipped": reason}
    import yaml

    import fabfile

    log(f"hosts: {n} namespace hosts over SSH, one engine each")
    state = testcluster.up(
        n_hosts=n,
        base_dir=work / "testcluster",
        prefix=HOSTS_PREFIX,
        subnet=HOSTS_SUBNET,
    )
    try:
        data = yaml.safe_load(testcluster.hosts_yml(state, python=sys.executable))
        data["controller"].update(
            ports=list(BENCH_HOST_PORTS),
            state_dir=str((work / "hosts-state").resolve()),
        )
        cfg = parse_hosts(data, "<bench hosts>")
        cl.start(cfg, n_local=0)
        client = None
        try:
            client = cl.connect(cfg)
            started = fabfile.start_engines(cfg, cfg.remote_hosts)
            if started.failed:
                raise RuntimeError(f"engines did not start: {started.failed}")
            cl.wait_for_engines(client, n)
            split = persist_splits(
                X, y, spec.cv.splitter(), spec.cv.as_dict(), work / "hosts-stage"
            )
            pushed = fabfile.push_splits(cfg, split.path, cfg.remote_hosts)
            if pushed.failed:
                raise RuntimeError(f"push failed: {pushed.failed}")
            view = client.load_balanced_view()
            _fleet_search(view, SVC(), cands, split, work / "runs", "hosts-warm")
            t = time.perf_counter()
            s = _fleet_search(
                view, SVC(), cands, split, work / "runs", "hosts", expected
            )
            wall = time.perf_counter() - t
        finally:
            if client is not None:
                client.close()
            fabfile.stop_engines(cfg, cfg.remote_hosts)
            cl.stop(cfg)
    finally:
        testcluster.down(state)
    per_host: dict[str, int] = {}
    for r in s._records:
        per_host[r["host"]] = per_host.get(r["host"], 0) + 1
    eff = (sequential / n) / wall
    log(
        f"hosts: {n} hosts {wall:.2f} s, efficiency {eff:.3f}, tasks per host {per_host}"
    )
    return {
        "hosts": n,
        "engines": n,
        "wall": wall,
        "ideal": sequential / n,
        "efficiency": eff,
        "tasks_per_host": per_host,
    }


def bench_memory(client, n: int, quick: bool, work: Path, log) -> dict:
    """Figure 2: peak summed worker PSS and available-memory drop, both sides."""
    import psutil
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import ShuffleSplit

    from runtime.engine.probe import engine_probe

    rows = MEMORY_ROWS[quick]
    X, y = make_classification(
        n_samples=rows, n_features=MEMORY_FEATURES, n_informative=20, random_state=0
    )
    X = np.ascontiguousarray(X)
    nbytes = X.nbytes + y.nbytes
    splitter = ShuffleSplit(n_splits=3, test_size=0.25, random_state=0)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    est = LogisticRegression(max_iter=30)
    log(
        f"memory: data {nbytes / 1e6:.0f} MB, LogisticRegression x {len(grid['C'])} C x 3 folds"
    )
    split = persist_splits(X, y, splitter, {"bench": "memory", "rows": rows}, work)

    # Every process fleetcv runs per engine: the engines and anything they
    # started (ipyparallel's nanny, when enabled), as loky's side counts its
    # workers and its resource tracker.
    engine_pids = _with_children(
        [p["pid"] for p in client[:].apply_async(engine_probe).get()]
    )
    fleet_baseline_pss = _sum_pss(engine_pids)
    before = psutil.virtual_memory().available
    with PssSampler(lambda: engine_pids) as fs:
        t = time.perf_counter()
        _fleet_search(
            client.load_balanced_view(),
            est,
            _plain_grid(grid),
            split,
            work / "runs",
            "memory",
        )
        fleet_wall = time.perf_counter() - t
    fleet = {
        "peak_sum_pss": fs.peak_pss(),
        "baseline_sum_pss": fleet_baseline_pss,
        "available_drop": fs.available_drop(before),
        "wall": fleet_wall,
        "samples": fs.samples,
    }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Warm the loky pool first so its workers exist and can be baselined.
        from joblib import Parallel, delayed

        Parallel(n_jobs=n)(delayed(time.sleep)(0.01) for _ in range(2 * n))
        loky_baseline = _sum_pss(_loky_pids())
        before = psutil.virtual_memory().available
        with PssSampler(_loky_pids) as ls:
            t = time.perf_counter()
            _sklearn_search(est, grid, splitter, n).fit(X, y)
            loky_wall = time.perf_counter() - t
    loky = {
        "peak_sum_pss": ls.peak_pss(),
        "baseline_sum_pss": loky_baseline,
        "available_drop": ls.available_drop(before),
        "wall": loky_wall,
        "samples": ls.samples,
    }
    # "Model size" per engine: the fitted model (coef_ and intercept_) plus
    # the most that one fit and its two scorings allocate on top of the
    # mapped data (gradients, predictions: O(rows) arrays any worker needs).
    model_bytes = 8 * (MEMORY_FEATURES + 1)
    view = client.load_balanced_view()
    # Absolute: a relative name is resolved against the engine's workdir.
    ref = str(split.fold_path(0).resolve())
    work_bytes = max(
        view.apply_async(
            _fit_working_memory, fold_ref=ref, estimator=est, params=p
        ).get()
        for p in _plain_grid(grid)
    )
    budget = nbytes + fleet_baseline_pss + n * (model_bytes + work_bytes)
    return {
        "model_bytes": model_bytes,
        "fit_working_bytes": work_bytes,
        "data_bytes": nbytes,
        "n_workers": n,
        "fleetcv": fleet,
        "sklearn_loky": loky,
        "fleetcv_budget_bytes": budget,
        "fleetcv_within_budget": fleet["peak_sum_pss"] <= budget,
        "pss_ratio_fleetcv_over_loky": fleet["peak_sum_pss"] / loky["peak_sum_pss"]
        if loky["peak_sum_pss"]
        else None,
    }


def _fit_working_memory(**evaluate_kwargs) -> int:
    """Peak bytes that one `evaluate` allocates (runs on an engine).

    tracemalloc sees numpy's buffers (numpy reports them to it) and Python
    objects, not the memory-mapped fold, which is the data's own budget.
    """
    import tracemalloc

    from runtime.engine.worker import evaluate, load_fold_cached

    load_fold_cached(evaluate_kwargs["fold_ref"])  # the mapping is not the fit's
    tracemalloc.start()
    try:
        evaluate(**evaluate_kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_dispatch(client, quick: bool, work: Path, log) -> dict:
    """Figure 3: tiny tasks per second with the journal on."""
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import ShuffleSplit

    n_tasks = DISPATCH_TASKS[quick]
    rng = np.random.RandomState(0)
    X, y = rng.rand(200, 5), rng.randint(0, 2, 200)
    split = persist_splits(
        X, y, ShuffleSplit(n_splits=1, random_state=0), {"bench": "dispatch"}, work
    )
    cands = [{"constant": None, "strategy": "prior"}] * (n_tasks // 2) + [
        {"constant": None, "strategy": "most_frequent"}
    ] * (n_tasks - n_tasks // 2)
    log(f"dispatch: {n_tasks} DummyClassifier tasks, journal on")
    view = client.load_balanced_view()
    # The warm-up run's journal gives the task durations, as a previous run
    # in runs/ does for `invoke search`: tiny tasks then go several to a message.
    warm = _fleet_search(
        view,
        DummyClassifier(),
        cands[:: n_tasks // 50],
        split,
        work / "runs",
        "dispatch-warm",
    )
    per_params: dict[str, list[float]] = {}
    for r in warm._records:
        per_params.setdefault(json.dumps(r["params"], sort_keys=True), []).append(
            (r.get("fit_time") or 0)
            + (r.get("score_time") or 0)
            + (r.get("train_score_time") or 0)
        )
    expected = {}
    for i, c in enumerate(cands):
        seen = per_params.get(json.dumps(c, sort_keys=True))
        if seen:
            # The median: a warm-up's first tasks also pay one-time imports.
            expected[i] = statistics.median(seen)
    t = time.perf_counter()
    s = _fleet_search(
        view, DummyClassifier(), cands, split, work / "runs", "dispatch", expected
    )
    wall = time.perf_counter() - t
    busy = sum(
        (r.get("fit_time") or 0)
        + (r.get("score_time") or 0)
        + (r.get("train_score_time") or 0)
        for r in s._records
    )
    return {
        "n_tasks": n_tasks,
        "wall_seconds": wall,
        "tasks_per_second": n_tasks / wall,
        "ms_per_task": 1000 * wall / n_tasks,
        "ms_per_task_in_estimator": 1000 * busy / n_tasks,
        "journal_lines": len(s._records),
        "tasks_per_message": n_tasks / s.n_messages,
    }


def environment(client, n: int) -> dict:
    """Machine, versions, and threadpoolctl's view of the driver, an engine and a loky worker."""
    import ipyparallel
    import joblib
    import sklearn
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_info

    def pools():
        from threadpoolctl import threadpool_info

        return [
            {
                k: p.get(k)
                for k in ("user_api", "internal_api", "num_threads", "version")
            }
            for p in threadpool_info()
        ]

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": {
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "joblib": joblib.__version__,
            "ipyparallel": ipyparallel.__version__,
        },
        "threads": {
            "driver": [
                {k: p.get(k) for k in ("user_api", "internal_api", "num_threads")}
                for p in threadpool_info()
            ],
            "fleetcv_engine": client[client.ids[0]].apply_sync(pools),
            "loky_worker": Parallel(n_jobs=n)(delayed(pools)() for _ in range(1))[0],
        },
        "engines": n,
    }


def run_bench(
    engines: int | None = None,
    quick: bool = False,
    out_dir: str | os.PathLike = "bench",
    log=print,
) -> dict:
    """Run the four benchmarks and write results.json, BENCHMARKS.md and a PNG.

    Parameters
    ----------
    engines : int, optional
        N, the engines and the loky workers (default: cores).
    quick : bool
        Smaller grid, smaller data, fewer runs (under 2 minutes on 2 cores).
    out_dir : path
        Where results.json and the PNG go; BENCHMARKS.md goes to the repo root.
    log : callable
        Progress lines.

    Returns
    -------
    dict
        Everything written to results.json.
    """
    n = engines or os.cpu_count() or 1
    out = Path(out_dir)
    work = out / "work"
    shutil.rmtree(work / "runs", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    cfg = parse_hosts(
        {
            "controller": {
                "ip": "127.0.0.1",
                "ports": BENCH_PORTS,
                "state_dir": str(work / "state"),
            },
            "hosts": [
                {
                    "name": "localhost",
                    "local": True,
                    "engines": n,
                    "workdir": str(work.resolve()),
                }
            ],
        },
        "<bench>",
    )
    if cl.is_running(cfg):
        cl.stop(cfg)
    start = time.perf_counter()
    log(f"bench: starting {n} engines")
    cl.start(cfg)
    client = cl.connect(cfg)
    try:
        cl.wait_for_engines(client, n)
        results = {
            "command": "invoke bench"
            + (f" --engines {engines}" if engines else "")
            + (" --quick" if quick else ""),
            "quick": quick,
            "environment": environment(client, n),
            "reference": bench_reference(client, n, quick, work, log),
            "memory": bench_memory(client, n, quick, work, log),
            "dispatch": bench_dispatch(client, quick, work, log),
        }
    finally:
        client.close()
        cl.stop(cfg)
    results["total_seconds"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    plot_bench(results, out / "bench.png")
    (
        REPO / "BENCHMARKS.md"
        if out.resolve() == (REPO / "bench").resolve()
        else out / "BENCHMARKS.md"
    ).write_text(render_markdown(results))
    return results


def plot_bench(results: dict, path: Path) -> Path:
    """Scale (wall time vs engines, with the ideal) and memory (PSS over time) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    sc = results["reference"]["scale"]
    a.plot([s["engines"] for s in sc], [s["wall"] for s in sc], "o-", label="fleetcv")
    a.plot(
        [s["engines"] for s in sc],
        [s["ideal"] for s in sc],
        "k--",
        label="sequential / engines",
    )
    hosts = results["reference"].get("hosts") or {}
    if "wall" in hosts:
        a.plot(
            [hosts["engines"]],
            [hosts["wall"]],
            "s",
            color="tab:red",
            label=f"fleetcv, {hosts['hosts']} hosts over SSH",
        )
    a.set_xlabel("engines")
    a.set_ylabel("wall time (s)")
    a.set_title("reference search: scale")
    a.set_xticks([s["engines"] for s in sc])
    a.legend()
    mem = results["memory"]
    for name, key in (("fleetcv", "fleetcv"), ("sklearn loky", "sklearn_loky")):
        smp = mem[key]["samples"]
        b.plot([s["t"] for s in smp], [s["sum_pss"] / 1e6 for s in smp], label=name)
    b.axhline(mem["data_bytes"] / 1e6, color="k", ls=":", label="one copy of the data")
    b.set_xlabel("seconds")
    b.set_ylabel("summed worker PSS (MB)")
    b.set_title(
        f"memory, {mem['n_workers']} workers, {mem['data_bytes'] / 1e6:.0f} MB data"
    )
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _gap_txt(ref: dict) -> str:
    """The median gap between two messages on an engine, as a phrase."""
    gaps = ref.get("fleetcv_task_gap_seconds")
    if not gaps:
        return "the gaps between tasks were not measured in this run"
    n_tasks = ref["n_candidates"] * ref["n_folds"]
    messages = ref.get("fleetcv_messages")
    sent = (
        f"{n_tasks} tasks went in a median {statistics.median(messages):.0f} messages "
        "(tasks that the warm-up's timings show short go several to a message, "
        "runtime/dispatch/search.py), and "
        if messages
        else ""
    )
    return (
        f"{sent}an engine waits a median {statistics.median(gaps) * 1000:.1f} ms between one "
        "message's end and the next one's start (ipyparallel's reply to the controller, its "
        "scheduler handing over the next message, and the engine's kernel receiving it)"
    )


def _inflation_txt(ref: dict) -> str:
    """The work-inflation factors, N engines and 1 engine, as a phrase."""
    infl = ref.get("fleetcv_work_inflation")
    if infl is None:
        return "an unmeasured multiple of"
    one = ref["scale"][0].get("evaluate_seconds")
    alone = (
        f" (one engine alone: {one / ref['sequential_seconds']:.3f}x)" if one else ""
    )
    return f"{infl:.3f}x with {ref['scale'][-1]['engines']} engines busy{alone}"


def _known(xs) -> list[float]:
    return [x for x in xs or [] if x is not None]


def _cpu_share_rows(ref: dict) -> list[str]:
    """Table rows: each side's workers' CPU seconds and CPU share, medians per round."""
    sk_s, fl_s = (
        _known(ref.get("sklearn_worker_cpu_share")),
        _known(ref.get("fleetcv_engine_cpu_share")),
    )
    sk_c, fl_c = (
        _known(ref.get("sklearn_worker_cpu_seconds")),
        _known(ref.get("fleetcv_engine_cpu_seconds")),
    )
    if not (sk_s and fl_s and sk_c and fl_c):
        return []
    return [
        f"| workers' CPU seconds (the fits, on all workers) | {statistics.median(fl_c):.2f} s "
        f"| {statistics.median(sk_c):.2f} s | | |",
        "| workers' CPU share = CPU seconds / (N x wall) | "
        f"{statistics.median(fl_s):.3f} | {statistics.median(sk_s):.3f} | | |",
    ]


def _fits_only_txt(ref: dict) -> str:
    """What the wall ratio would be with fleetcv's overhead gone entirely."""
    bound = ref.get("fits_only_ratio_over_sklearn")
    if bound is None:
        return ""
    return (
        "Had fleetcv's engines never waited and all finished together, its fits alone "
        "(summed time inside `evaluate` / N, a lower bound of its wall) would have taken a "
        f"median {bound:.3f} x GridSearchCV's wall in the same round"
        + (
            ": the wall target asks for more than removing all of fleetcv's overhead. "
            if bound > TARGET_WALL_RATIO
            else ". "
        )
    )


def _cpu_share_txt(ref: dict) -> str:
    """The wall ratio split into a CPU-seconds ratio and a CPU-share ratio."""
    rounds = [
        (fc / sc, ss / fs)
        for fc, sc, fs, ss in zip(
            ref.get("fleetcv_engine_cpu_seconds") or [],
            ref.get("sklearn_worker_cpu_seconds") or [],
            ref.get("fleetcv_engine_cpu_share") or [],
            ref.get("sklearn_worker_cpu_share") or [],
            strict=False,
        )
        if sc is not None and ss is not None
    ]
    if not rounds:
        return ""
    sk_share = statistics.median(_known(ref["sklearn_worker_cpu_share"]))
    return (
        "On each side wall = workers' CPU seconds / (N x their CPU share), so the wall "
        "ratio is (fleetcv's CPU seconds / GridSearchCV's) x (GridSearchCV's share / "
        "fleetcv's share); per round here: "
        + ", ".join(f"{c:.3f} x {s:.3f}" for c, s in rounds)
        + ". GridSearchCV's loky workers were on the CPU a median "
        f"{sk_share:.1%} of N x wall, and fleetcv's share cannot pass 1, so the share "
        f"ratio cannot go under {sk_share:.3f}: unless fleetcv's fits cost less CPU than "
        f"the same fits in GridSearchCV, a wall ratio of {TARGET_WALL_RATIO} needs "
        f"GridSearchCV's workers on the CPU {TARGET_WALL_RATIO:.0%} of the time or less. "
        "The CPU-seconds ratio moves from round to round with this machine's speed "
        "(the same fits cost more CPU time while the VM is slower). "
    )


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render_markdown(r: dict) -> str:
    """BENCHMARKS.md from results.json."""
    env, ref, mem, dis = r["environment"], r["reference"], r["memory"], r["dispatch"]
    n = env["engines"]
    mb = 1e6
    lines = [
        "# fleetcv benchmarks",
        "",
        f"Generated by `{r['command']}` on {env['date']} ({r['total_seconds']:.0f} s). "
        f"Machine: {env['cpus']} cores, {env['machine']}, Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ". Raw figures: `bench/results.json`; plot: `bench/bench.png`.",
        "",
        f"Both sides run {n} workers with the same folds; BLAS/OpenMP threads per worker "
        f"(threadpoolctl): fleetcv engine {[p['num_threads'] for p in env['threads']['fleetcv_engine']]}, "
        f"loky worker {[p['num_threads'] for p in env['threads']['loky_worker']]}.",
        "",
        "| figure | fleetcv | scikit-learn | target | |",
        "|---|---|---|---|---|",
        f"| reference search wall (median of {len(ref['fleetcv_runs'])}) | {ref['fleetcv_wall_seconds']:.2f} s | {ref['sklearn_wall_seconds']:.2f} s (GridSearchCV n_jobs={n}) | fleetcv <= {TARGET_WALL_RATIO} x sklearn: ratio {ref['wall_ratio_fleetcv_over_sklearn']:.3f} | {_mark(ref['wall_ratio_fleetcv_over_sklearn'] <= TARGET_WALL_RATIO)} |",
        f"| efficiency = (sequential {ref['sequential_seconds']:.2f} s / {n}) / wall | {ref['fleetcv_efficiency']:.3f} | {ref['sklearn_efficiency']:.3f} | >= {TARGET_EFFICIENCY} | {_mark(ref['fleetcv_efficiency'] >= TARGET_EFFICIENCY)} |",
        *_cpu_share_rows(ref),
        f"| peak summed worker PSS, {mem['data_bytes'] / mb:.0f} MB data | {mem['fleetcv']['peak_sum_pss'] / mb:.0f} MB | {mem['sklearn_loky']['peak_sum_pss'] / mb:.0f} MB (loky) | <= 0.5 x loky: ratio {mem['pss_ratio_fleetcv_over_loky']:.3f}; <= data + baselines + models and fit working memory ({mem['fleetcv_budget_bytes'] / mb:.1f} MB; peak {mem['fleetcv']['peak_sum_pss'] / mb:.1f} MB) | {_mark((mem['pss_ratio_fleetcv_over_loky'] or 9) <= TARGET_MEMORY_VS_LOKY and mem['fleetcv_within_budget'])} |",
        f"| worker baseline PSS (before the search) | {mem['fleetcv']['baseline_sum_pss'] / mb:.0f} MB | {mem['sklearn_loky']['baseline_sum_pss'] / mb:.0f} MB | | |",
        f"| available-memory drop during the search | {mem['fleetcv']['available_drop'] / mb:.0f} MB | {mem['sklearn_loky']['available_drop'] / mb:.0f} MB | | |",
        f"| dispatch, {dis['n_tasks']} tiny tasks, journal on, {dis.get('tasks_per_message', 1):.1f} per message | {dis['tasks_per_second']:.0f} tasks/s ({dis['ms_per_task']:.2f} ms/task, {dis['ms_per_task_in_estimator']:.2f} ms in the estimator) | | >= {TARGET_DISPATCH:.0f} tasks/s | {_mark(dis['tasks_per_second'] >= TARGET_DISPATCH)} |",
        "",
        "Scale (reference search, fleetcv; one run each, so within this machine's spread):",
        "",
        "| engines | wall (s) | ideal = sequential / engines (s) | efficiency |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s['engines']} | {s['wall']:.2f} | {s['ideal']:.2f} | {s['efficiency']:.3f} |"
        for s in ref["scale"]
    ]
    hosts = ref.get("hosts") or {}
    if "wall" in hosts:
        lines.append(
            f"| {hosts['engines']}, on {hosts['hosts']} namespace hosts over SSH (one engine "
            f"each, folds pushed with rsync) | {hosts['wall']:.2f} | {hosts['ideal']:.2f} | "
            f"{hosts['efficiency']:.3f} |"
        )
    elif hosts:
        lines.append(f"| namespace hosts: skipped ({hosts.get('skipped')}) | | | |")
    ratios = ref.get("round_ratios_fleetcv_over_sklearn") or [
        ref["wall_ratio_fleetcv_over_sklearn"]
    ]
    fl_mem, sk_mem = mem["fleetcv"], mem["sklearn_loky"]
    busy = ref.get("fleetcv_engine_busy_fraction") or []
    busy_txt = f"{statistics.median(busy):.1%}" if busy else "(not measured)"
    lines += [
        "",
        "How it is measured:",
        "",
        f"- Reference search: one untimed warm-up of each side, then {len(ref['fleetcv_runs'])} "
        "rounds of sequential sklearn (n_jobs=1, one BLAS thread), GridSearchCV(n_jobs=N) and "
        "fleetcv, the order rotating from round to round, so that a drift of the machine's speed "
        "(this is a shared VM: the same sequential run takes "
        f"{min(ref.get('sequential_runs') or [ref['sequential_seconds']]):.1f} to "
        f"{max(ref.get('sequential_runs') or [ref['sequential_seconds']]):.1f} s here) hits every side "
        "alike. Medians are in the table; fleetcv / sklearn per round: "
        + ", ".join(f"{x:.3f}" for x in ratios)
        + ".",
        "- scikit-learn's `score_time` leaves out the train-score computation, so summed "
        "fit + score times understate the work; the wall times above include it on both sides. "
        "GridSearchCV runs with `refit=False`, like fleetcv, which ends with the scores and "
        "fits no final model on all rows.",
        "- Memory is sampled every 100 ms with psutil: the PSS of every process each side runs per "
        "worker (fleetcv: the engines and any process they start; loky: its workers and its "
        "resource tracker), summed. The page cache holding fleetcv's fold files counts as "
        "available memory, so the available-memory drop understates fleetcv's file-backed pages; "
        "summed PSS counts them.",
        "- The hosts row runs the same search on network-namespace hosts of this machine "
        "(testcluster.py: own sshd, address and disk each), engines started over SSH and folds "
        "pushed with rsync: it shows what going through hosts costs, on the same cores.",
        "",
        "Why the figures are what they are:",
        "",
        "- Wall time: both sides run the same fits on the same cores. fleetcv's engines spent "
        f"{busy_txt} of N x wall inside `evaluate` (mapping the fold, fitting, scoring; median "
        "over the rounds): what fleetcv adds around it (messages between driver, controller "
        "and engines; the start and the end of a run) is the rest: "
        f"{_gap_txt(ref)}. The fits themselves took "
        f"{_inflation_txt(ref)} the sequential run's time (summed time inside `evaluate` / "
        "sequential time). In one run, efficiency = busy share / that factor exactly (here "
        "medians of each, so about): a tool with no overhead at all would reach "
        "1 / factor. Beyond these two, the spread from run to run of this shared machine. "
        f"{_fits_only_txt(ref)}{_cpu_share_txt(ref)}"
        "fleetcv's edges over GridSearchCV come from the warm-up's timings: the longest "
        "candidates go first, so no slow fit runs alone at the end (GridSearchCV runs the "
        "candidates in grid order, whatever their cost), and short tasks share a message; on "
        "one machine with two cores they are worth a few tenths of a second, within the "
        "spread. One engine "
        f"alone reaches {ref['scale'][0]['efficiency']:.3f} of the sequential run.",
        f"- Memory: the data part (peak minus the workers' baseline) is "
        f"{(fl_mem['peak_sum_pss'] - fl_mem['baseline_sum_pss']) / mb:.0f} MB for fleetcv "
        f"against {(sk_mem['peak_sum_pss'] - sk_mem['baseline_sum_pss']) / mb:.0f} MB "
        "for loky, which copies every training fold into each worker (`X[train]`). fleetcv's "
        "engines map one fold file (train and test rows) and share its pages; folds this big go "
        "fold by fold, so a host never maps two at once. The engines are forked from one process "
        "that imported numpy, scikit-learn and ipykernel (runtime/engine/launcher.py), so they share "
        f"those pages too: {fl_mem['baseline_sum_pss'] / n / mb:.0f} MB PSS per engine before the "
        f"search, against {sk_mem['baseline_sum_pss'] / n / mb:.0f} MB per loky worker.",
        f"- Dispatch: {dis['ms_per_task_in_estimator']:.2f} ms of each tiny task is scikit-learn's own "
        "work in the estimator (input validation, `type_of_target`). On top of it come the "
        "messages (about 10 ms of an engine's time each, above), shared by the "
        f"{dis.get('tasks_per_message', 1):.1f} tasks of a message, the rest of `evaluate` (clone, "
        "set_params, the fold lookup, the memory figures of each record) and the driver's "
        "journal, on the same cores.",
        "",
    ]
    return "\n".join(lines)
