"""Parameter values come back with their type: tuples, numpy scalars, None, estimators...

FleetSearchCV against GridSearchCV, RandomizedSearchCV and HalvingGridSearchCV
on real local engines, key by key of `cv_results_` with types: `type(a) is
type(b)` for every value of `params` and `best_params_`, the dtype and the
mask of every `param_<name>` masked array, the dtype of every other column.
Then the everyday idiom `pipe.set_params(**search.best_params_).fit(X, y)`,
and the same values read back from the run directory alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from fleetcv import FleetSearchCV, read_results
from fleetcv.rundir import journal as jn
from tests.conftest import write_local_hosts

pytestmark = pytest.mark.cluster

X, Y = load_digits(return_X_y=True)
X, Y = X[:450], Y[:450]

PIPE = Pipeline(
    [
        ("ft", FunctionTransformer()),
        ("scale", MinMaxScaler()),
        ("clf", LogisticRegression(max_iter=300)),
    ]
)
#: Every kind of value a user gives: tuples, numpy scalars of two widths,
#: None, strings, a mapping with integer keys, a lambda and a numpy function,
#: estimators, and a numpy integer that only some candidates have.
GRID = [
    {
        "ft__func": [None, lambda a: a / 16.0, np.sqrt],
        "scale__feature_range": [(0, 1), (-1, 1)],
        "clf__C": [np.float64(0.1), np.float32(1.0)],
        "clf__class_weight": [None, "balanced", {0: 2.0}],
    },
    {
        "scale": [StandardScaler(), "passthrough"],
        "clf__max_iter": [np.int64(200)],
    },
]


@pytest.fixture(scope="module")
def hosts(local_cluster, tmp_path_factory):
    """A hosts file naming the session's running cluster."""
    cfg, _ = local_cluster
    path = tmp_path_factory.mktemp("hosts") / "hosts.yml"
    return str(write_local_hosts(path, cfg.controller.state_path.parent))


def same_value(a, b) -> bool:
    """Same type, and the same value as scikit-learn compares a parameter's."""
    if type(a) is not type(b):
        return False
    if hasattr(a, "get_params") and not isinstance(a, type):
        return repr(a.get_params(deep=True)) == repr(b.get_params(deep=True))
    if callable(a):
        return a.__qualname__ == b.__qualname__ and (
            a is b or a(np.arange(4.0)).tolist() == b(np.arange(4.0)).tolist()
        )
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    return a == b


def assert_same_params(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for name in theirs:
        assert same_value(ours[name], theirs[name]), (name, ours[name], theirs[name])


def assert_same_cv_results(ours, theirs) -> None:
    """Every key of scikit-learn's cv_results_, with its type, dtype and mask."""
    mine, ref = ours.cv_results_, theirs.cv_results_
    assert set(ref) <= set(mine), set(ref) - set(mine)
    for key, value in ref.items():
        got = mine[key]
        if key == "params":
            assert type(got) is list and len(got) == len(value)
            for a, b in zip(got, value, strict=True):
                assert_same_params(a, b)
            continue
        assert type(got) is type(value), key
        assert got.dtype == value.dtype and got.shape == value.shape, (
            key,
            got.dtype,
            value.dtype,
        )
        if key.startswith("param_"):
            mask = np.ma.getmaskarray(value)
            np.testing.assert_array_equal(np.ma.getmaskarray(got), mask, err_msg=key)
            for i in np.flatnonzero(~mask):
                assert same_value(got[i], value[i]), (key, i, got[i], value[i])
        elif key.endswith("_time"):
            continue  # timings: the same dtype, other values
        elif key.startswith("rank_") or value.dtype.kind == "i":
            np.testing.assert_array_equal(got, value, err_msg=key)
        else:
            np.testing.assert_allclose(got, value, rtol=0, atol=1e-12, err_msg=key)
    assert ours.best_index_ == theirs.best_index_
    assert_same_params(ours.best_params_, theirs.best_params_)
    assert ours.best_params_ is ours.cv_results_["params"][ours.best_index_]
    assert abs(ours.best_score_ - theirs.best_score_) <= 1e-12


def assert_refits_by_best_params(ours, theirs) -> None:
    """`set_params(**best_params_)` then fit: the model GridSearchCV's best_estimator_ is.

    (The idiom sets a chosen estimator's parameters on the very object in
    best_params_, with scikit-learn as here: checks of the values go first.)
    """
    model = clone(PIPE).set_params(**ours.best_params_).fit(X, Y)
    np.testing.assert_array_equal(model.predict(X), theirs.best_estimator_.predict(X))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def assert_read_back(ours) -> None:
    """The run directory alone gives the same values (another process's view of the run)."""
    again = read_results(ours.run_dir_)
    for a, b in zip(
        again.cv_results_["params"], ours.cv_results_["params"], strict=True
    ):
        assert_same_params(a, b)
    for key, value in ours.cv_results_.items():
        if key.startswith("param_"):
            got = again.cv_results_[key]
            assert got.dtype == value.dtype, key
            np.testing.assert_array_equal(
                np.ma.getmaskarray(got), np.ma.getmaskarray(value), err_msg=key
            )
    assert_same_params(again.best_params_, ours.best_params_)
    assert again.best_index_ == ours.best_index_


def test_a_grid_of_typed_values_equals_gridsearchcv_type_for_type(hosts, tmp_path):
    ours = FleetSearchCV(
        PIPE, GRID, cv=3, hosts=hosts, runs_root=str(tmp_path), verbose=0
    ).fit(X, Y)
    theirs = GridSearchCV(PIPE, GRID, cv=3).fit(X, Y)
    assert_same_cv_results(ours, theirs)
    assert_read_back(ours)
    assert_refits_by_best_params(ours, theirs)
    # The journal and results.json are JSON; the values are typed in them.
    results = json.loads((ours.run_dir_ / jn.RESULTS).read_text())
    first = results["params"][0]
    assert first["scale__feature_range"] == {"$type": "tuple", "items": [0, 1]}
    assert first["clf__C"] == {"$type": "numpy", "dtype": "float64", "value": 0.1}
    # The report prints the values as Python prints GridSearchCV's.
    report = (ours.run_dir_ / jn.REPORT).read_text()
    assert "'scale__feature_range': (0, 1)" in report or (
        "'scale__feature_range': (-1, 1)" in report
    ), report
    assert "np.float64(0.1)" in report or "np.float32(1.0)" in report, report


def test_randomized_typed_values_equal_randomizedsearchcv(hosts, tmp_path):
    space = {
        "scale__feature_range": [(0, 1), (-1, 1)],
        "clf__C": loguniform(1e-2, 1e1),  # draws numpy float64
        "clf__class_weight": [None, "balanced"],
        "clf__max_iter": [np.int64(200), np.int64(300)],
        "clf": [LogisticRegression(max_iter=300, tol=1e-3)],
    }
    ours = FleetSearchCV(
        PIPE,
        param_distributions=space,
        n_iter=6,
        random_state=0,
        cv=3,
        hosts=hosts,
        runs_root=str(tmp_path),
        verbose=0,
    ).fit(X, Y)
    theirs = RandomizedSearchCV(PIPE, space, n_iter=6, random_state=0, cv=3).fit(X, Y)
    assert type(theirs.best_params_["clf__C"]) is np.float64
    assert_same_cv_results(ours, theirs)
    assert_read_back(ours)
    assert_refits_by_best_params(ours, theirs)


HALVING_GRID = {
    "scale__feature_range": [(0, 1), (-1, 1)],
    "clf__C": [np.float64(0.01), np.float64(0.1), np.float32(1.0)],
    "clf__class_weight": [None, "balanced"],
    "scale": [MinMaxScaler()],
}


def test_halving_typed_values_equal_halvinggridsearchcv(hosts, tmp_path):
    ours = FleetSearchCV(
        PIPE,
        HALVING_GRID,
        search="halving",
        factor=2,
        random_state=0,
        cv=3,
        hosts=hosts,
        runs_root=str(tmp_path),
        verbose=0,
    ).fit(X, Y)
    theirs = HalvingGridSearchCV(
        PIPE, HALVING_GRID, factor=2, random_state=0, cv=3, return_train_score=False
    ).fit(X, Y)
    assert len(set(theirs.cv_results_["iter"])) > 1  # several iterations ran
    assert_same_cv_results(ours, theirs)
    for name in ("n_resources_", "n_candidates_", "n_iterations_", "min_resources_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert_read_back(ours)
    assert_refits_by_best_params(ours, theirs)


def test_halving_random_typed_values_equal_halvingrandomsearchcv(hosts, tmp_path):
    space = {
        "scale__feature_range": [(0, 1), (-1, 1)],
        "clf__C": loguniform(1e-2, 1e1),
        "clf__class_weight": [None, "balanced"],
    }
    ours = FleetSearchCV(
        PIPE,
        param_distributions=space,
        search="halving",
        n_candidates=6,
        factor=2,
        random_state=0,
        cv=3,
        hosts=hosts,
        runs_root=str(tmp_path),
        verbose=0,
    ).fit(X, Y)
    theirs = HalvingRandomSearchCV(
        PIPE,
        space,
        n_candidates=6,
        factor=2,
        random_state=0,
        cv=3,
        return_train_score=False,
    ).fit(X, Y)
    assert_same_cv_results(ours, theirs)
    assert ours.n_candidates_ == theirs.n_candidates_
    assert_refits_by_best_params(ours, theirs)
