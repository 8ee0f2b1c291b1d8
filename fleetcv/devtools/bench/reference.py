"""Figures 1 and 4: the reference search, fleetcv against GridSearchCV, and its scale.

Runs on the laptop, driving the bench's local engines and a loky pool of
the same size. The reference is searches/digits_svc.yml's data and folds
with an SVC grid: untimed warm-ups of each side, then rounds of the
sequential search, GridSearchCV(n_jobs=N) and fleetcv, then fleetcv on
1..N engines (and on N namespace hosts, see `hosts`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fleetcv.devtools.bench.hosts import Remote, bench_hosts
from fleetcv.devtools.bench.peers import PEERS, peer_figures, started
from fleetcv.devtools.bench.sampling import cpu_seconds, loky_pids
from fleetcv.devtools.bench.searches import (
    fleet_search,
    grid,
    inside_seconds,
    journal,
    plain_grid,
    sklearn_search,
    task_gap,
)
from fleetcv.rundir.results import expected_times
from fleetcv.spec import load_data, load_search_spec
from runtime.folds import persist_splits

#: The reference search's spec, in the repository's searches/.
REFERENCE_SPEC = Path(__file__).resolve().parents[3] / "searches" / "digits_svc.yml"
#: Timed rounds: (full, quick).
TIMED_RUNS = (5, 1)


@dataclass
class Problem:
    """The reference data, folds and grid, shared by every side and round."""

    spec: object
    X: object
    y: object
    splitter: object
    split: object
    grid: dict
    cands: list[dict]


def load_problem(quick: bool, work: Path) -> Problem:
    """Load the reference data and persist its folds under `work`.

    Parameters
    ----------
    quick : bool
        The smaller grid.
    work : Path
        Where the fold files go.

    Returns
    -------
    Problem
        Data, folds and candidates.
    """
    spec = load_search_spec(REFERENCE_SPEC)
    X, y = load_data(spec)
    splitter = spec.cv.splitter()
    split = persist_splits(X, y, splitter, spec.cv.as_dict(), work)
    g = grid(quick)
    return Problem(spec, X, y, splitter, split, g, plain_grid(g))


class Rounds:
    """The three sides of a reference round; each times itself and keeps its figures.

    Built after the warm-ups: `sk_workers` are the loky workers joblib
    reuses for every timed run, `engines` the engines' processes, `expected`
    the warm-up's timings that let the slowest candidates start first.
    """

    def __init__(self, view, n: int, p: Problem, expected, sk_workers, engines, work):
        self.view, self.n, self.p, self.expected = view, n, p, expected
        self.sk_workers, self.engines, self.work = sk_workers, engines, work
        # CPU seconds of each side's workers per round (None: loky replaced
        # its pool during the round, so part of the work went unseen).
        self.sk_cpu: list[float | None] = []
        self.fl_cpu: list[float] = []
        self.busy: list[float] = []
        self.inside: list[float] = []
        self.gaps: list[float] = []
        self.messages: list[int] = []

    def sequential(self) -> float:
        """One sequential GridSearchCV; its wall seconds."""
        from sklearn.svm import SVC
        from threadpoolctl import threadpool_limits

        # One BLAS thread, as in each loky worker and each engine: the limit
        # is N times one worker's speed.
        t = time.perf_counter()
        with threadpool_limits(1):
            sklearn_search(SVC(), self.p.grid, self.p.splitter, 1).fit(
                self.p.X, self.p.y
            )
        return time.perf_counter() - t

    def sklearn(self) -> float:
        """One GridSearchCV(n_jobs=N); its wall seconds."""
        from sklearn.svm import SVC

        t = time.perf_counter()
        before = cpu_seconds(self.sk_workers)
        sklearn_search(SVC(), self.p.grid, self.p.splitter, self.n).fit(
            self.p.X, self.p.y
        )
        wall = time.perf_counter() - t
        used = cpu_seconds(self.sk_workers) - before
        same_pool = set(loky_pids()) == {p.pid for p in self.sk_workers}
        self.sk_cpu.append(used if same_pool else None)
        return wall

    def peer(self, name: str) -> float:
        """One GridSearchCV on peer `name` (started, warmed up, then timed); its wall seconds."""
        from sklearn.svm import SVC

        with started(name, self.n, self.view.client) as backend:
            with backend():
                # Untimed: the workers up and scikit-learn imported in them,
                # as in the other sides' warm-ups.
                sklearn_search(SVC(), {"C": [1.0]}, self.p.splitter, self.n).fit(
                    self.p.X[:300], self.p.y[:300]
                )
            t = time.perf_counter()
            with backend():
                sklearn_search(SVC(), self.p.grid, self.p.splitter, self.n).fit(
                    self.p.X, self.p.y
                )
            return time.perf_counter() - t

    def fleetcv(self) -> float:
        """One fleetcv search on the N engines; its wall seconds."""
        from sklearn.svm import SVC

        t = time.perf_counter()
        before = cpu_seconds(self.engines)
        s = fleet_search(
            self.view,
            SVC(),
            self.p.cands,
            self.p.split,
            self.work / "runs",
            "ref",
            self.expected,
        )
        wall = time.perf_counter() - t
        self.fl_cpu.append(cpu_seconds(self.engines) - before)
        records = journal(s)
        self.inside.append(inside_seconds(records))
        # Share of the N engines' time (N x wall) spent inside `evaluate`; the
        # rest is what fleetcv adds around the fits: messages between driver,
        # controller and engines, the start and the end of the run.
        self.busy.append(self.inside[-1] / (self.n * wall))
        self.gaps.append(task_gap(records))
        self.messages.append(s.n_messages)
        return wall


def bench_reference(
    client, n: int, quick: bool, work: Path, log, remote: Remote | None = None
) -> dict:
    """Figure 1 (and the data for figure 4): the reference search, both sides.

    Parameters
    ----------
    client : ipyparallel.Client
        Connected to the bench's N local engines.
    n : int
        Engines, and loky workers.
    quick : bool
        Smaller grid, one timed round.
    work : Path
        Scratch directory (folds, run directories).
    log : callable
        Progress lines.
    remote : Remote, optional
        The backends for the hosts run; None skips it.

    Returns
    -------
    dict
        Every figure of the reference search (see `_figures`), with `scale`
        and `hosts`.
    """
    p = load_problem(quick, work)
    runs = TIMED_RUNS[quick]
    log(
        f"reference: {len(p.cands)} candidates x {p.split.n_folds} folds; warm-up, then "
        f"{runs} rounds of sequential sklearn, GridSearchCV(n_jobs={n}) on loky, "
        f"{', '.join(PEERS[1:])}, and fleetcv on {n} engines"
    )
    rounds = _warm_up(client.load_balanced_view(), n, p, work)
    times = _timed_rounds(rounds, runs, log)
    sequential = statistics.median(times["sequential"])
    scale = _scale(client, n, p, rounds.expected, sequential, work, log)
    hosts = bench_hosts(
        n, p.cands, p.X, p.y, p.spec.cv, rounds.expected, sequential, work, log, remote
    )
    return _figures(rounds, times, scale, hosts)


def _warm_up(view, n: int, p: Problem, work: Path) -> Rounds:
    """Untimed runs of each side (loky pool started, imports done); the rounds to time."""
    from sklearn.svm import SVC

    sklearn_search(SVC(), p.grid, p.splitter, n).fit(p.X, p.y)
    # joblib reuses the pool, so these are the processes that do the work of
    # every timed run (checked after each).
    sk_workers = [psutil.Process(pid) for pid in loky_pids()]
    warm = journal(fleet_search(view, SVC(), p.cands, p.split, work / "runs", "warmup"))
    # The warm-up's journal is what a real second run finds in runs/: the
    # timings that let the slowest candidates start first.
    expected = expected_times(warm)
    engines = [psutil.Process(pid) for pid in {r["pid"] for r in warm}]
    return Rounds(view, n, p, expected, sk_workers, engines, work)


def _timed_rounds(rounds: Rounds, runs: int, log) -> dict[str, list[float]]:
    """`runs` interleaved rounds of the three sides; each side's wall seconds."""
    # The order rotates each round: this machine's speed drifts by several
    # percent within minutes (a shared VM), and a drift must hit every side
    # alike, not the one measured last.
    sides = [
        ("sequential", rounds.sequential),
        ("sklearn", rounds.sklearn),
        ("fleetcv", rounds.fleetcv),
        # loky is the "sklearn" side; the other peers start and stop each round.
        *[
            (name, lambda name=name: rounds.peer(name))
            for name in PEERS
            if name != "loky"
        ],
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    for r in range(runs):
        k = r % len(sides)
        for name, fn in sides[k:] + sides[:k]:
            # Each side times itself, without the bench's own bookkeeping.
            times[name].append(fn())
        log(
            f"reference round {r + 1}/{runs}: "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items())
        )
    return times


def _scale(
    client, n: int, p: Problem, expected, sequential: float, work: Path, log
) -> list[dict]:
    """The reference search on 1..N engines, one run each."""
    from sklearn.svm import SVC

    scale = []
    for k in range(1, n + 1):
        v = client.load_balanced_view(targets=client.ids[:k])
        t = time.perf_counter()
        s = fleet_search(
            v, SVC(), p.cands, p.split, work / "runs", f"scale{k}", expected
        )
        wall = time.perf_counter() - t
        scale.append(
            {
                "engines": k,
                "wall": wall,
                "ideal": sequential / k,
                "efficiency": (sequential / k) / wall,
                "evaluate_seconds": inside_seconds(journal(s)),
            }
        )
        log(
            f"scale: {k} engines {wall:.2f} s, efficiency {(sequential / k) / wall:.3f}"
        )
    return scale


def _figures(rounds: Rounds, times: dict, scale: list[dict], hosts: dict) -> dict:
    """The reference figures of results.json, from the rounds' measurements."""
    n = rounds.n
    sequential = statistics.median(times["sequential"])
    sk_wall, sk_times = statistics.median(times["sklearn"]), times["sklearn"]
    fl_wall, fl_times = statistics.median(times["fleetcv"]), times["fleetcv"]
    # fleetcv's wall, had its engines never waited and all finished together:
    # its fits alone, per round (a lower bound).
    fits_only = [i / n / k for i, k in zip(rounds.inside, sk_times, strict=True)]
    limit = sequential / n
    return {
        "hosts": hosts,
        "n_candidates": len(rounds.p.cands),
        "n_folds": rounds.p.split.n_folds,
        "sequential_seconds": sequential,
        "fleetcv_engine_busy_fraction": rounds.busy,
        "fleetcv_evaluate_seconds": rounds.inside,
        "fleetcv_task_gap_seconds": rounds.gaps,
        "fleetcv_messages": rounds.messages,
        # efficiency = busy fraction / work inflation, exactly: what fleetcv
        # adds around the fits, and the fits themselves running slower.
        "fleetcv_work_inflation": statistics.median(rounds.inside) / sequential,
        "sequential_runs": times["sequential"],
        "round_ratios_fleetcv_over_sklearn": [
            f / k for f, k in zip(fl_times, sk_times, strict=True)
        ],
        "fits_only_ratio_over_sklearn": statistics.median(fits_only),
        # Per round: the workers' CPU seconds, and their share of the cores
        # (CPU seconds / (N x wall)). wall = CPU / (N x share) on each side,
        # which splits the wall ratio into a CPU ratio and a share ratio.
        "sklearn_worker_cpu_seconds": rounds.sk_cpu,
        "fleetcv_engine_cpu_seconds": rounds.fl_cpu,
        "sklearn_worker_cpu_share": [
            None if c is None else c / (n * w)
            for c, w in zip(rounds.sk_cpu, sk_times, strict=True)
        ],
        "fleetcv_engine_cpu_share": [
            c / (n * w) for c, w in zip(rounds.fl_cpu, fl_times, strict=True)
        ],
        "limit_seconds": limit,
        "sklearn_wall_seconds": sk_wall,
        "sklearn_runs": sk_times,
        "fleetcv_wall_seconds": fl_wall,
        "fleetcv_runs": fl_times,
        "sklearn_efficiency": limit / sk_wall,
        "fleetcv_efficiency": limit / fl_wall,
        "wall_ratio_fleetcv_over_sklearn": fl_wall / sk_wall,
        # Every peer's rounds (loky: the sklearn side's), for the peers table.
        "peers": peer_figures(
            {"loky": sk_times, **{k: times[k] for k in PEERS if k != "loky"}},
            fl_times,
        ),
        "scale": scale,
    }
