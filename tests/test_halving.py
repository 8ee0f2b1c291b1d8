"""`search: halving` on real local engines, checked against scikit-learn's Halving*SearchCV."""

from __future__ import annotations

import json
from collections import Counter

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_digits, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV, KFold
from sklearn.svm import SVC

from fleetcv import api
from fleetcv.errors import ConfigError
from fleetcv.spec import load_search_spec
from tests.conftest import (
    in_iteration,
    journal_lines,
    rendered,
    resume,
    slow_run_killed,
    write_spec,
)

pytestmark = pytest.mark.cluster

DIGITS = {"loader": "sklearn.datasets.load_digits"}
IRIS = {"loader": "sklearn.datasets.load_iris"}
CV = {"kind": "kfold", "n_splits": 3, "random_state": 1}
SVC_GRID = {"C": [0.1, 1, 10, 100], "gamma": [0.001, 0.01, 0.1]}
FOREST = {
    "class": "sklearn.ensemble.RandomForestClassifier",
    "params": {"random_state": 0},
}
FOREST_GRID = {"max_depth": [2, 4, None], "max_features": [1, 2, 3]}


def _run(tmp_path, hosts_file, spec: dict, name: str):
    path = write_spec(tmp_path, spec, name)
    run_dir = tmp_path / f"run-{name}"
    job = api.search(path, hosts_file=hosts_file, run_dir=run_dir, progress=False)
    assert job.status == "finished", job.report()
    return job, run_dir, json.loads((run_dir / "results.json").read_text())


def _plain(params: dict) -> dict:
    return {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}


def assert_equals_halving(ours: dict, theirs, X, run_dir) -> None:
    """results.json against a fitted Halving*SearchCV: every iteration, key and the refit."""
    ref = theirs.cv_results_
    # The candidates of every iteration, in scikit-learn's order.
    assert ours["iter"] == ref["iter"].tolist()
    assert ours["params"] == [_plain(p) for p in ref["params"]]
    shared = [k for k in ref if k in ours and "time" not in k and k != "params"]
    assert {"iter", "n_resources", "mean_test_score", "rank_test_score"} <= set(shared)
    for key in shared:
        if key.startswith("param_"):
            assert ours[key] == [_plain({"v": v})["v"] for v in ref[key]], key
        else:
            np.testing.assert_allclose(
                np.asarray(ours[key], dtype=float),
                np.asarray(ref[key], dtype=float),
                rtol=0,
                atol=1e-12,
                err_msg=key,
            )
    assert ours["n_resources_"] == theirs.n_resources_
    assert ours["n_candidates_"] == theirs.n_candidates_
    assert ours["n_iterations_"] == theirs.n_iterations_
    assert ours["best_index"] == theirs.best_index_
    assert ours["best_params"] == _plain(theirs.best_params_)
    assert abs(ours["best_score"] - theirs.best_score_) <= 1e-12
    model = joblib.load(run_dir / "best_estimator.joblib")
    np.testing.assert_array_equal(model.predict(X), theirs.best_estimator_.predict(X))


def test_halving_grid_on_rows_equals_halvinggridsearchcv(tmp_path, cluster_hosts_file):
    spec = {
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": "halving",
        "random_state": 0,
        "params": SVC_GRID,
        "data": DIGITS,
        "cv": CV,
    }
    job, run_dir, ours = _run(tmp_path, cluster_hosts_file, spec, "grid-rows")
    X, y = load_digits(return_X_y=True)
    theirs = HalvingGridSearchCV(
        SVC(), SVC_GRID, cv=KFold(3, shuffle=True, random_state=1), random_state=0
    ).fit(X, y)
    assert_equals_halving(ours, theirs, X, run_dir)
    assert theirs.n_iterations_ == 3, "the test must cover several iterations"
    # Each row's tasks fit on the subsample's rows (int(fraction x fold rows)).
    records = [
        json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()
    ]
    n_train = {r["row"]["iter"]: r["n_train"] for r in records if r["fold"] == 0}
    assert n_train == {
        i: int(n / 1797 * 1198) for i, n in enumerate(theirs.n_resources_)
    }
    assert "Successive halving (factor 3, resource n_samples): 3/3" in job.report()
    assert ours["iterations"][-1] == {
        "iter": 2,
        "n_resources": 1791,
        "n_candidates": 2,
        "n_finished": 2,
        "best_score": theirs.best_score_,
    }
    assert (rendered(run_dir) / "iterations.png").stat().st_size > 0
    assert "<h2>Iterations</h2>" in (run_dir / "report.html").read_text()


def test_halving_random_on_rows_equals_halvingrandomsearchcv(
    tmp_path, cluster_hosts_file
):
    spec = {
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": "halving",
        "halving": {"n_candidates": 10, "factor": 2, "min_resources": 100},
        "random_state": 3,
        "params": {"C": "loguniform(1e-1, 1e2)", "gamma": "loguniform(1e-4, 1e-1)"},
        "data": DIGITS,
        "cv": CV,
    }
    _, run_dir, ours = _run(tmp_path, cluster_hosts_file, spec, "random-rows")
    X, y = load_digits(return_X_y=True)
    theirs = HalvingRandomSearchCV(
        SVC(),
        {"C": loguniform(1e-1, 1e2), "gamma": loguniform(1e-4, 1e-1)},
        n_candidates=10,
        factor=2,
        min_resources=100,
        cv=KFold(3, shuffle=True, random_state=1),
        random_state=3,
    ).fit(X, y)
    assert_equals_halving(ours, theirs, X, run_dir)
    assert theirs.n_iterations_ >= 3


def test_halving_grid_on_n_estimators_equals_halvinggridsearchcv(
    tmp_path, cluster_hosts_file
):
    spec = {
        "estimator": FOREST,
        "search": "halving",
        "halving": {"resource": "n_estimators", "max_resources": 27, "factor": 3},
        "random_state": 0,
        "params": FOREST_GRID,
        "data": IRIS,
        "cv": CV,
    }
    _, run_dir, ours = _run(tmp_path, cluster_hosts_file, spec, "grid-trees")
    X, y = load_iris(return_X_y=True)
    theirs = HalvingGridSearchCV(
        RandomForestClassifier(random_state=0),
        FOREST_GRID,
        resource="n_estimators",
        max_resources=27,
        cv=KFold(3, shuffle=True, random_state=1),
        random_state=0,
    ).fit(X, y)
    assert_equals_halving(ours, theirs, X, run_dir)
    assert [p["n_estimators"] for p in ours["params"]] == [
        n
        for n, c in zip(theirs.n_resources_, theirs.n_candidates_, strict=True)
        for _ in range(c)
    ]


def test_halving_random_on_n_estimators_equals_halvingrandomsearchcv(
    tmp_path, cluster_hosts_file
):
    spec = {
        "estimator": FOREST,
        "search": "halving",
        "halving": {
            "resource": "n_estimators",
            "max_resources": 30,
            "min_resources": 3,
            "n_candidates": "exhaust",
            "aggressive_elimination": True,
        },
        "random_state": 5,
        "params": {"max_depth": "randint(1, 6)", "min_samples_leaf": [1, 2, 4, 8]},
        "data": IRIS,
        "cv": CV,
    }
    _, run_dir, ours = _run(tmp_path, cluster_hosts_file, spec, "random-trees")
    X, y = load_iris(return_X_y=True)
    from scipy.stats import randint

    theirs = HalvingRandomSearchCV(
        RandomForestClassifier(random_state=0),
        {"max_depth": randint(1, 6), "min_samples_leaf": [1, 2, 4, 8]},
        resource="n_estimators",
        max_resources=30,
        min_resources=3,
        aggressive_elimination=True,
        cv=KFold(3, shuffle=True, random_state=1),
        random_state=5,
    ).fit(X, y)
    assert_equals_halving(ours, theirs, X, run_dir)


def test_a_driver_killed_in_the_second_iteration_resumes_to_the_same_result(
    tmp_path, cluster_hosts_file, monkeypatch
):
    # The refit model is a SlowSVC: loading it here imports its module.
    monkeypatch.syspath_prepend(str(tmp_path))
    grid = {"C": [0.1, 1, 10], "gamma": [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1]}
    spec = {
        "search": "halving",
        "random_state": 0,
        "params": grid,
        "data": DIGITS,
        "cv": CV,
    }
    run_dir = slow_run_killed(tmp_path, spec, cluster_hosts_file, in_iteration(1))
    before = journal_lines(run_dir)
    iters = Counter(r["row"]["iter"] for r in before)
    assert iters[0] == 18 * 3 and 0 < iters[1] < 6 * 3 and not iters[2], iters

    out = resume(run_dir, cluster_hosts_file)
    assert f"({len(before)} already in the journal)" in out.stdout
    after = journal_lines(run_dir)
    assert after[: len(before)] == before
    # Only the missing tasks ran: every (row, fold) is in the journal once.
    pairs = Counter((r["candidate"], r["fold"]) for r in after)
    assert set(pairs.values()) == {1} and len(pairs) == (18 + 6 + 2) * 3
    ours = json.loads((run_dir / "results.json").read_text())
    assert ours["status"] == "finished"
    X, y = load_digits(return_X_y=True)
    theirs = HalvingGridSearchCV(
        SVC(), grid, cv=KFold(3, shuffle=True, random_state=1), random_state=0
    ).fit(X, y)
    assert_equals_halving(ours, theirs, X, run_dir)


@pytest.mark.parametrize(
    ("halving", "extra", "match"),
    [
        (
            {"factor": 1},
            {},
            r"halving\.factor: expected a number greater than 1, got 1",
        ),
        (
            {"resource": "n_trees"},
            {},
            r"halving\.resource: 'n_trees' is neither n_samples nor a parameter",
        ),
        (
            {"resource": "max_iter"},
            {},
            r"halving\.max_resources: auto means all the rows, which resource max_iter",
        ),
        (
            {"n_candidates": "exhaust", "min_resources": "exhaust"},
            {},
            r"halving\.n_candidates: n_candidates and min_resources cannot both be exhaust",
        ),
        (
            {"min_resources": 0},
            {},
            r"halving\.min_resources: expected a positive integer",
        ),
        ({"speed": 2}, {}, r"halving\.speed"),
        ({}, {"n_iter": 5}, r"n_iter: a halving search draws halving\.n_candidates"),
        (
            {"resource": "max_iter", "max_resources": 100},
            {"params": {"C": [1, 2], "max_iter": [10, 20]}},
            r"params\.max_iter: max_iter is the halving resource",
        ),
        ({}, {"scoring": ["accuracy", "f1_macro"]}, r"scoring: a halving search keeps"),
    ],
)
def test_bad_halving_settings_are_named(tmp_path, halving, extra, match):
    spec = {
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": "halving",
        "halving": halving,
        "params": {"C": [1, 2]},
        "data": IRIS,
        **extra,
    }
    with pytest.raises(ConfigError, match=match):
        load_search_spec(write_spec(tmp_path, spec, "bad"))


def test_halving_settings_in_a_grid_search_are_refused(tmp_path):
    spec = {
        "estimator": {"class": "sklearn.svm.SVC"},
        "halving": {"factor": 2},
        "params": {"C": [1, 2]},
        "data": IRIS,
    }
    with pytest.raises(
        ConfigError, match=r"halving: settings of a halving search in a search: grid"
    ):
        load_search_spec(write_spec(tmp_path, spec, "grid"))


def test_min_resources_above_the_data_is_named(tmp_path, cluster_hosts_file):
    spec = {
        "estimator": {"class": "sklearn.svm.SVC"},
        "search": "halving",
        "halving": {"min_resources": 500},
        "params": {"C": [1, 2]},
        "data": IRIS,
    }
    path = write_spec(tmp_path, spec, "toomany")
    with pytest.raises(
        ConfigError,
        match=r"halving\.min_resources: min_resources is 500 .* more than max_resources 150",
    ):
        api.search(path, hosts_file=cluster_hosts_file, run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()
