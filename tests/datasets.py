"""Data sets and user code for the tests of real users' data (tests/test_real_data.py).

Loaders run on the driver only (a spec's `data.loader`); the scorer object is
imported by the engines too, which on this machine have the checkout on
their import path.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.metrics import make_scorer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHURN_CSV = os.path.join(REPO, "searches", "data", "churn.csv")

_WORDS = {
    0: "price refund slow broken late cancel support wait bill error".split(),
    1: "great fast love easy friendly quick helpful clean smooth value".split(),
}
_COMMON = "the a service app order delivery team product account day".split()


def texts(n: int = 240, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short reviews of two classes: raw text for a vectorizer (deterministic)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    docs = []
    for label in y:
        own = rng.choice(_WORDS[int(label)], size=int(rng.integers(2, 5)))
        other = rng.choice(_WORDS[1 - int(label)], size=int(rng.integers(0, 3)))
        common = rng.choice(_COMMON, size=int(rng.integers(3, 7)))
        words = np.concatenate([own, other, common])
        rng.shuffle(words)
        docs.append(" ".join(words))
    return docs, y


def churn_numeric_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The churn table's numeric and categorical columns, NaN kept (no strings)."""
    frame = pd.read_csv(CHURN_CSV, dtype={"plan": "category"})
    X = frame[
        ["tenure_months", "monthly_charges", "total_charges", "support_calls", "plan"]
    ]
    return X, frame["churned"].to_numpy()


def _cost(y_true, y_pred):
    # A missed churner costs five times a false alarm.
    fn = np.sum((y_true == 1) & (y_pred == 0))
    fp = np.sum((y_true == 0) & (y_pred == 1))
    return -(5.0 * fn + fp) / len(y_true)


#: A user's scorer object, by import path: tests.datasets.cost_scorer.
cost_scorer = make_scorer(_cost)


def simplest_of_top_three(cv_results: dict) -> int:
    """A refit callable (scikit-learn's `refit=callable`): the smallest C among the 3 best."""
    ranks = np.asarray(cv_results["rank_test_score"])
    top = np.flatnonzero(ranks <= 3)
    c = np.asarray([float(v) for v in cv_results["param_clf__C"]])
    return int(top[np.argmin(c[top])])


def churn_with_groups():
    """(X, y, groups) from a loader: the churn frame and its accounts."""
    frame = pd.read_csv(CHURN_CSV, dtype={"plan": "category"})
    X = frame.drop(columns=["account", "weight", "churned"])
    return X, frame["churned"].to_numpy(), frame["account"].to_numpy()


def coo_and_text_series():
    """A sparse COO matrix (turned to CSR by fleetcv) and, as y, 0/1."""
    import scipy.sparse

    X = scipy.sparse.random(60, 8, density=0.3, format="coo", random_state=0)
    return X, np.arange(60) % 2


def text_series():
    """Texts as a pandas Series (one column), and their labels."""
    docs, y = texts(60)
    return pd.Series(docs, name="review"), y


def string_target_with_gaps():
    """A string target with a missing label."""
    y = np.array(["yes", "no"] * 30, dtype=object)
    y[7] = None
    return np.random.default_rng(0).random((60, 3)), y


def duplicate_columns():
    """A frame with two columns of one name."""
    X = pd.DataFrame(np.ones((60, 2)), columns=["a", "a"])
    return X, np.arange(60) % 2


def returns_a_float(cv_results: dict) -> float:
    """A wrong refit callable: a float is no index."""
    return 1.0
