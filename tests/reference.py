"""scikit-learn's own searches as references for fleetcv's runs, and the churn spec's parts.

Used by the tests of real users' data on local engines (test_real_data.py)
and on the namespace hosts (test_multihost.py).
"""

from __future__ import annotations

import json

import joblib
import numpy as np
from sklearn.model_selection import GridSearchCV

from fleetcv.dispatch.refit import BEST_ESTIMATOR
from fleetcv.rundir import journal as jn
from fleetcv.spec import load_dataset
from runtime.build import build, build_scorers
from tests.datasets import CHURN_CSV

NUM = ["tenure_months", "monthly_charges", "total_charges", "support_calls"]
CAT = ["plan", "payment", "region"]
#: The churn table's preprocessing: impute + scale numbers, impute + one-hot the rest.
PREP = {
    "name": "prep",
    "class": "sklearn.compose.ColumnTransformer",
    "params": {
        "transformers": [
            [
                "num",
                {
                    "pipeline": [
                        {"name": "impute", "class": "sklearn.impute.SimpleImputer"},
                        {
                            "name": "scale",
                            "class": "sklearn.preprocessing.StandardScaler",
                        },
                    ]
                },
                NUM,
            ],
            [
                "cat",
                {
                    "pipeline": [
                        {
                            "name": "impute",
                            "class": "sklearn.impute.SimpleImputer",
                            "params": {"strategy": "most_frequent"},
                        },
                        {
                            "name": "onehot",
                            "class": "sklearn.preprocessing.OneHotEncoder",
                            "params": {"handle_unknown": "ignore"},
                        },
                    ]
                },
                CAT,
            ],
        ]
    },
}
LOGREG = {
    "name": "clf",
    "class": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 1000},
}
CHURN_DATA = {"path": CHURN_CSV, "target": "churned", "dtype": {"plan": "category"}}
STRATIFIED = {
    "class": "sklearn.model_selection.StratifiedKFold",
    "params": {"n_splits": 3, "shuffle": True, "random_state": 0},
}


def reference(spec, scoring=None, refit=True, grid=None) -> GridSearchCV:
    """GridSearchCV on the spec's data, folds, grid (or `grid`) and scoring, fitted."""
    data = load_dataset(spec)
    if grid is None:
        grid = [
            {k: [build(v) for v in vals] for k, vals in g.items()} for g in spec.params
        ]
    return GridSearchCV(
        spec.estimator.build(),
        grid,
        cv=spec.cv.splitter(),
        scoring=scoring
        if scoring is not None
        else build_scorers(spec.scoring)
        if spec.scoring
        else None,
        refit=refit,
        return_train_score=spec.return_train_score,
        error_score=spec.error_score,
        n_jobs=1,
    ).fit(data.X, data.y, groups=data.groups, **data.fit_params)


def _same_value(ours, theirs) -> bool:
    if theirs is np.ma.masked:  # a parameter this candidate's grid does not set
        return ours is None
    if isinstance(theirs, tuple):  # results.json keeps it typed: a tuple again
        return type(build(ours)) is tuple and build(ours) == theirs
    if isinstance(ours, dict) and ("class" in ours or "pipeline" in ours):
        return repr(build(ours)) == repr(theirs)
    return ours == theirs or (isinstance(theirs, float) and float(ours) == theirs)


def assert_equals_reference(spec, run_dir, grid: GridSearchCV, X_new) -> dict:
    """results.json equals grid.cv_results_ on every shared key; same best, same predictions."""
    ours = json.loads((run_dir / jn.RESULTS).read_text())
    theirs = grid.cv_results_
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))
    for key, value in theirs.items():
        if key.endswith("_time"):
            continue  # wall-clock figures, not results
        if key.startswith("rank_"):
            assert ours[key] == value.tolist(), key
        elif key == "params" or key.startswith("param_"):
            pairs = zip(
                ours[key] if key == "params" else ours[key],
                value,
                strict=True,
            )
            for a, b in pairs:
                if key == "params":
                    assert a.keys() == b.keys() and all(
                        _same_value(a[k], b[k]) for k in a
                    ), key
                else:
                    assert _same_value(a, b), key
        else:
            np.testing.assert_allclose(
                np.asarray(ours[key], dtype=float),
                value,
                rtol=0,
                atol=1e-12,
                err_msg=key,
            )
    assert ours["best_index"] == grid.best_index_
    best = ours["best_params"]
    assert best.keys() == grid.best_params_.keys()
    assert all(_same_value(best[k], grid.best_params_[k]) for k in best)
    if hasattr(grid, "best_score_"):
        assert abs(ours["best_score"] - grid.best_score_) <= 1e-12
    model = joblib.load(run_dir / BEST_ESTIMATOR)
    np.testing.assert_array_equal(
        model.predict(X_new), grid.best_estimator_.predict(X_new)
    )
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(
            model.predict_proba(X_new),
            grid.best_estimator_.predict_proba(X_new),
            rtol=0,
            atol=1e-12,
        )
    assert ours["refit_time"] > 0 and ours["best_estimator"] == BEST_ESTIMATOR
    return ours
