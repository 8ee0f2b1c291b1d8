"""One search on each side, as every benchmark runs it, and what its journal says.

Runs on the laptop (the bench's driver). fleetcv's side is a
`DistributedSearch` on an ipyparallel view; scikit-learn's is GridSearchCV
on its loky pool. The figures about fleetcv's engines come from the run's
journal (journal.jsonl), the file every fleetcv run writes, read after the
search.
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

import numpy as np

from fleetcv.dispatch.search import DistributedSearch
from fleetcv.rundir.journal import JOURNAL, read_journal


def grid(quick: bool) -> dict:
    """The reference grid of SVC's C and gamma (fewer gammas when quick).

    Parameters
    ----------
    quick : bool
        Two gammas instead of five.

    Returns
    -------
    dict
        Parameter name -> array of values, as GridSearchCV takes it.
    """
    gammas = np.logspace(-4, 0, 5)
    return {"C": np.logspace(-1, 2, 4), "gamma": gammas[:2] if quick else gammas}


def plain_grid(param_grid: dict) -> list[dict]:
    """The candidates of a grid, with plain floats (what fleetcv's journal stores).

    Parameters
    ----------
    param_grid : dict
        Parameter name -> values.

    Returns
    -------
    list of dict
        One dict per candidate, in ParameterGrid's order.
    """
    from sklearn.model_selection import ParameterGrid

    return [{k: float(v) for k, v in p.items()} for p in ParameterGrid(param_grid)]


def fleet_search(
    view, estimator, candidates, split, run_root: Path, tag: str, expected=None
) -> DistributedSearch:
    """Run one fleetcv search to the end in a fresh run directory.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        The engines to use.
    estimator : estimator
        Cloned for every task.
    candidates : list of dict
        The parameter sets.
    split : SplitSet
        The persisted folds.
    run_root : Path
        Parent of the run directory (`<tag>-<monotonic ns>`).
    tag : str
        Names the run directory and the error.
    expected : dict, optional
        Candidate -> expected seconds per task, for the dispatch order.

    Returns
    -------
    DistributedSearch
        The finished search.

    Raises
    ------
    RuntimeError
        When some task did not finish.
    """
    run_dir = run_root / f"{tag}-{time.monotonic_ns()}"
    s = DistributedSearch(view, estimator, candidates=candidates, run_dir=run_dir)
    s.launch(split, expected_times=expected).wait()
    if s.n_done != s.n_tasks:
        raise RuntimeError(f"bench search {tag} did not finish: {s.report()}")
    return s


def journal(search: DistributedSearch) -> list[dict]:
    """The records a finished search wrote to its run directory's journal.

    Parameters
    ----------
    search : DistributedSearch
        A search made by `fleet_search` (it has a run directory).

    Returns
    -------
    list of dict
        One record per finished task.
    """
    return read_journal(Path(search.run_dir) / JOURNAL)


def sklearn_search(estimator, param_grid: dict, splitter, n_jobs: int):
    """GridSearchCV doing the work fleetcv does: train scores, no refit.

    A fleetcv search ends with cv_results_, not a model fitted on all rows.

    Parameters
    ----------
    estimator : estimator
        What to search.
    param_grid : dict
        Parameter name -> values.
    splitter : cross-validator
        The same folds as fleetcv's side.
    n_jobs : int
        loky workers.

    Returns
    -------
    GridSearchCV
        Not fitted yet.
    """
    from sklearn.model_selection import GridSearchCV

    return GridSearchCV(
        estimator,
        param_grid,
        cv=splitter,
        n_jobs=n_jobs,
        return_train_score=True,
        refit=False,
    )


def task_seconds(record: dict) -> float:
    """Seconds one task spent in the estimator: fit, test and train scoring.

    Parameters
    ----------
    record : dict
        A journal record.

    Returns
    -------
    float
        Seconds (missing times count 0).
    """
    return (
        (record.get("fit_time") or 0)
        + (record.get("score_time") or 0)
        + (record.get("train_score_time") or 0)
    )


def inside_seconds(records: list[dict]) -> float:
    """Summed time the engines spent inside `evaluate` (map the fold, fit, score).

    Parameters
    ----------
    records : list of dict
        Journal records.

    Returns
    -------
    float
        Seconds.
    """
    return sum(r["ended"] - r["started"] for r in records if "ended" in r)


def task_gap(records: list[dict]) -> float:
    """Median seconds an engine spends between one message's last task and the next's first.

    That is ipyparallel's per-message machinery: the reply to the controller,
    the scheduler handing over the next message, the engine's kernel
    receiving it (py-spy of an engine shows ipykernel's send, flush and
    event loop). Tasks sent in one message follow each other without it.

    Parameters
    ----------
    records : list of dict
        Journal records.

    Returns
    -------
    float
        Seconds; 0.0 when no engine ran two messages.
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
