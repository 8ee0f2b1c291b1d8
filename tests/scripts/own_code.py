"""A user's script with its own code: `python own_code.py HOSTS RUNS_ROOT`.

Its transformer class, its metric function and a lambda live in `__main__`,
where no engine can import them, and a scorer comes from a module of the
checkout that no host has installed (tests.datasets): FleetSearchCV must
send them by value and give what GridSearchCV gives, on this machine's
engines or remote hosts' (each host's backend, as a user's script gets).
Prints one JSON line of what it found.
"""

import json
import sys

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fleetcv import FleetSearchCV
from tests.datasets import cost_scorer


class Shrink(BaseEstimator, TransformerMixin):
    """Scale features by a factor: a transformer defined in the user's script."""

    def __init__(self, factor=1.0):
        self.factor = factor

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor


def share_right(y_true, y_pred):
    """The user's own metric."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def main(hosts: str, runs_root: str) -> None:
    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    pipe = Pipeline(
        [
            ("log", FunctionTransformer(lambda Z: np.log1p(Z))),
            ("shrink", Shrink()),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    grid = {"shrink__factor": [0.1, 1.0], "clf__C": [0.1, 1.0]}
    scoring = {"mine": make_scorer(share_right), "cost": cost_scorer}
    ours = FleetSearchCV(
        pipe,
        grid,
        cv=3,
        scoring=scoring,
        refit="mine",
        hosts=hosts,
        runs_root=runs_root,
        verbose=0,
    ).fit(X, y)
    theirs = GridSearchCV(pipe, grid, cv=3, scoring=scoring, refit="mine").fit(X, y)
    diff = max(
        float(np.max(np.abs(ours.cv_results_[key] - theirs.cv_results_[key])))
        for key in ("mean_test_mine", "mean_test_cost", "std_test_cost")
    )
    print(
        json.dumps(
            {
                "max_diff": diff,
                "best": ours.best_params_,
                "same_best": ours.best_params_ == theirs.best_params_,
                "same_predictions": bool((ours.predict(X) == theirs.predict(X)).all()),
                "refit_class": type(ours.best_estimator_.named_steps["shrink"])
                is Shrink,
                "hosts": sorted(set(ours.cv_results_["split0_host"])),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
