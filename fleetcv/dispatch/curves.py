"""`LearningCurve` and `ValidationCurve`: scikit-learn's curves on an ipyparallel cluster.

Runs on the driver. A curve is a `CurveJob` of a curve kind
(`fleetcv.kinds.curves`): its rows are training-set sizes or values of one
parameter, and every (row, fold) is a task of the one task runner, so abort,
Ctrl-C and resume behave as for a search. `curve_` holds the results with
scikit-learn's names.
"""

from __future__ import annotations

import math
from pathlib import Path

from fleetcv.dispatch.job import CurveJob
from fleetcv.kinds.curves import curve_job, learning_definition, validation_definition


class LearningCurve(CurveJob):
    """Scores for growing training-set sizes x folds on a LoadBalancedView.

    Each task fits on the first `k` rows of its memmapped training fold (a
    view, no copy) and scores on the whole test fold, as scikit-learn's
    `learning_curve(shuffle=False)`.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    estimator : sklearn estimator
        Cloned on the engines, with `params` set.
    train_sizes_abs : list of int
        Absolute sizes (see `fleetcv.kinds.curve_flags.translate_train_sizes`).
    params : dict, optional
        Fixed parameters set on every clone.
    scoring : str, optional
        sklearn scorer name; None uses the estimator's `score`.
    error_score : float or "raise"
        Score of a failed fit.
    run_dir : path, optional
        Where journal.jsonl, results.json and report.txt go.
    max_retries : int
        How often a task whose engine died is resubmitted.
    """

    def __init__(
        self,
        view,
        estimator,
        train_sizes_abs: list[int],
        params: dict | None = None,
        *,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
    ):
        super().__init__(
            view,
            estimator,
            curve_job(learning_definition(train_sizes_abs, params, scoring)),
            scoring=scoring,
            error_score=error_score,
            run_dir=run_dir,
            max_retries=max_retries,
        )


class ValidationCurve(CurveJob):
    """Scores for each value of one parameter x folds, the others fixed.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    estimator : sklearn estimator
        Cloned on the engines.
    param_name : str
        The parameter swept (e.g. "C" or "svc__gamma").
    param_range : list
        Its values, in plot order.
    params : dict, optional
        The other parameters, fixed (a value for `param_name` is ignored).
    scoring, error_score, run_dir, max_retries
        As for `LearningCurve`.
    """

    def __init__(
        self,
        view,
        estimator,
        param_name: str,
        param_range: list,
        params: dict | None = None,
        *,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
    ):
        super().__init__(
            view,
            estimator,
            curve_job(validation_definition(param_name, param_range, params, scoring)),
            scoring=scoring,
            error_score=error_score,
            run_dir=run_dir,
            max_retries=max_retries,
        )
