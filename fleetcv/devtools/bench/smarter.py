"""Figure 5: grid, halving, ASHA and Optuna on a space where most candidates are poor.

Runs on the laptop, driving the bench's local engines. The same digits SVC
space for every kind (Optuna chooses among the grid's values, so each of
its trials is a grid candidate): the wall time and fits each takes, and the
full-folds score of what it picks (looked up in the grid's results), against
the grid's best.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

#: The space: (full, quick). Large gammas overfit the digits (poor scores).
SPACES = (
    {
        "C": [0.1, 1.0, 10.0, 100.0],
        "gamma": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    },
    {"C": [1.0, 10.0], "gamma": [1e-3, 0.01, 0.1, 1.0]},
)
#: Optuna's trials: a third of the grid.
TRIAL_SHARE = 3


def _spec(kind: str, space: dict, work: Path) -> Path:
    n = len(space["C"]) * len(space["gamma"])
    spec = {
        "name": f"bench-{kind}",
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": kind,
        "random_state": 0,
        "params": space,
        "data": {"loader": "sklearn.datasets.load_digits"},
        "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
    }
    if kind == "asha":
        spec["asha"] = {"min_resources": 60}
    if kind == "optuna":
        spec["optuna"] = {"n_trials": max(2, n // TRIAL_SHARE)}
    path = work / f"smarter-{kind}.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _run(client, path: Path, work: Path) -> tuple[dict, float, int]:
    """One search to its end; (results.json, wall seconds, fits run)."""
    from fleetcv.dispatch.job import job_for
    from fleetcv.dispatch.lifecycle import search_job_of
    from fleetcv.spec import load_data, load_search_spec
    from runtime.folds import persist_splits

    spec = load_search_spec(path)
    X, y = load_data(spec)
    split = persist_splits(X, y, spec.cv.splitter(), spec.cv.as_dict(), work)
    job = search_job_of(spec)
    job = job(split) if callable(job) else job
    run_dir = work / "runs" / f"{spec.name}-{time.monotonic_ns()}"
    start = time.perf_counter()
    j = job_for(
        client.load_balanced_view(), spec.estimator.build(), job, run_dir=run_dir
    )
    j.launch(split).wait()
    wall = time.perf_counter() - start
    if j.status != "finished":
        raise RuntimeError(f"bench search {spec.name} ended {j.status}: {j.report()}")
    return json.loads((run_dir / "results.json").read_text()), wall, j.n_done


def bench_smarter(client, quick: bool, work: Path, log) -> dict:
    """Each search kind's wall, fits, and the full-folds score of its pick.

    Returns
    -------
    dict
        `n_candidates`, `grid_best_score`, and per kind (grid, halving,
        asha, optuna): `wall_seconds`, `fits`, `best_params`,
        `full_score` (the pick's mean test score on the full folds),
        `gap` (grid best - full_score), `wall_ratio` and `fits_ratio`
        (over the grid's).
    """
    space = SPACES[quick]
    out: dict = {"n_candidates": len(space["C"]) * len(space["gamma"])}
    runs = {}
    for kind in ("grid", "halving", "asha", "optuna"):
        log(f"smarter searches: {kind}")
        runs[kind] = _run(client, _spec(kind, space, work), work)
    grid = runs["grid"][0]
    full = {
        json.dumps(p, sort_keys=True): m
        for p, m in zip(grid["params"], grid["mean_test_score"], strict=True)
    }
    out["grid_best_score"] = grid["best_score"]
    for kind, (res, wall, fits) in runs.items():
        score = full[json.dumps(res["best_params"], sort_keys=True)]
        out[kind] = {
            "wall_seconds": wall,
            "fits": fits,
            "best_params": res["best_params"],
            "full_score": score,
            "gap": grid["best_score"] - score,
            "wall_ratio": wall / runs["grid"][1],
            "fits_ratio": fits / runs["grid"][2],
        }
    return out
