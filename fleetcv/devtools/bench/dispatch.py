"""Figure 3: tiny tasks per second through fleetcv, journal on.

Runs on the laptop, driving the bench's local engines: DummyClassifier
tasks, so what is measured is fleetcv's and ipyparallel's per-task cost.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from fleetcv.devtools.bench.peers import PEERS, peer_figures, started
from fleetcv.devtools.bench.searches import fleet_search, journal, task_seconds
from runtime.folds import persist_splits

#: Tasks: (full, quick).
DISPATCH_TASKS = (2000, 500)
#: Interleaved rounds of every side: (full, quick).
ROUNDS = (3, 1)


def bench_dispatch(client, quick: bool, work: Path, log) -> dict:
    """Tiny tasks per second with the journal on.

    Parameters
    ----------
    client : ipyparallel.Client
        Connected to the bench's local engines.
    quick : bool
        Fewer tasks.
    work : Path
        Scratch directory (folds, run directories).
    log : callable
        Progress lines.

    Returns
    -------
    dict
        `n_tasks`, `wall_seconds` (fleetcv's median round), `tasks_per_second`,
        `ms_per_task`, `ms_per_task_in_estimator`, `journal_lines` and
        `tasks_per_message` (of the last round), `peers` (`peer_figures`).
    """
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import ShuffleSplit

    n_tasks = DISPATCH_TASKS[quick]
    rng = np.random.RandomState(0)
    X, y = rng.rand(200, 5), rng.randint(0, 2, 200)
    splitter = ShuffleSplit(n_splits=1, random_state=0)
    split = persist_splits(X, y, splitter, {"bench": "dispatch"}, work)
    cands = [{"constant": None, "strategy": "prior"}] * (n_tasks // 2) + [
        {"constant": None, "strategy": "most_frequent"}
    ] * (n_tasks - n_tasks // 2)
    log(f"dispatch: {n_tasks} DummyClassifier tasks, journal on")
    view = client.load_balanced_view()
    # The warm-up run's journal gives the task durations, as a previous run
    # in runs/ does for `invoke search`: tiny tasks then go several to a message.
    warm = fleet_search(
        view,
        DummyClassifier(),
        cands[:: n_tasks // 50],
        split,
        work / "runs",
        "dispatch-warm",
    )
    expected = _median_times(journal(warm), cands)
    fleet_runs: list[float] = []
    peer_runs: dict[str, list[float]] = {name: [] for name in PEERS}
    for r in range(ROUNDS[quick]):
        t = time.perf_counter()
        s = fleet_search(
            view, DummyClassifier(), cands, split, work / "runs", "dispatch", expected
        )
        fleet_runs.append(time.perf_counter() - t)
        for name in PEERS[r % len(PEERS) :] + PEERS[: r % len(PEERS)]:
            # Each round starts with another peer (after fleetcv).
            peer_runs[name].append(_peer_tiny(name, client, cands, X, y, splitter, log))
    wall = statistics.median(fleet_runs)
    records = journal(s)
    busy = sum(task_seconds(r) for r in records)
    return {
        # The same tasks through GridSearchCV on each peer: wall seconds.
        "peers": peer_figures(peer_runs, fleet_runs),
        "n_tasks": n_tasks,
        "wall_seconds": wall,
        "tasks_per_second": n_tasks / wall,
        "ms_per_task": 1000 * wall / n_tasks,
        "ms_per_task_in_estimator": 1000 * busy / n_tasks,
        "journal_lines": len(records),
        "tasks_per_message": n_tasks / s.n_messages,
    }


def _median_times(records: list[dict], cands: list[dict]) -> dict[int, float]:
    """Candidate index -> median seconds per task of the same parameters in `records`."""
    per_params: dict[str, list[float]] = {}
    for r in records:
        per_params.setdefault(json.dumps(r["params"], sort_keys=True), []).append(
            task_seconds(r)
        )
    expected = {}
    for i, c in enumerate(cands):
        seen = per_params.get(json.dumps(c, sort_keys=True))
        if seen:
            # The median: a warm-up's first tasks also pay one-time imports.
            expected[i] = statistics.median(seen)
    return expected


def _peer_tiny(name: str, client, cands, X, y, splitter, log) -> float:
    """The dispatch figure's tasks as one GridSearchCV on peer `name`; its wall seconds."""
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import GridSearchCV

    # One candidate per task, in the same order: ParameterGrid takes lists.
    grid = [{k: [v] for k, v in c.items()} for c in cands]
    n = len(client.ids)
    with started(name, n, client) as backend, backend():
        # Untimed: the workers up, scikit-learn imported in them.
        GridSearchCV(DummyClassifier(), grid[:20], cv=splitter, n_jobs=n).fit(X, y)
        t = time.perf_counter()
        GridSearchCV(
            DummyClassifier(), grid, cv=splitter, n_jobs=n, refit=False,
            return_train_score=True,
        ).fit(X, y)  # fmt: skip
        wall = time.perf_counter() - t
    log(f"dispatch: {name} {len(cands)} tasks in {wall:.2f} s")
    return wall
