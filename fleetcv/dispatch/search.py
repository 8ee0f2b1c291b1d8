"""`DistributedSearch`: a grid or randomized search on an ipyparallel cluster.

Runs on the driver (the laptop, or a notebook). A search is a `SearchJob` of the
search kind (`fleetcv.kinds.search`): every (candidate, fold) is a task of
the one task runner (`fleetcv.dispatch.runner`). The API mirrors the
original notebook::

    search = DistributedSearch(view, SVC(), {"C": [0.1, 1.0]}, run_dir="runs/x")
    search.launch(split_dir)
    print(search.report())
    search.wait()
    search.best_params_, search.cv_results_
"""

from __future__ import annotations

import math
from pathlib import Path

from fleetcv.dispatch.job import SearchJob
from fleetcv.kinds.search import search_job
from fleetcv.rundir import results as rs
from runtime.build import describe


class DistributedSearch(SearchJob):
    """Evaluate candidates x folds on a LoadBalancedView.

    Parameters
    ----------
    view, estimator
        As for `fleetcv.dispatch.job.Job`.
    params : dict or list of dict, optional
        A grid (lists of values) or, with `n_iter`, distributions/lists to
        sample from (sklearn's ParameterSampler). Ignored when `candidates`
        is given.
    candidates : list of dict, optional
        The exact parameter combinations to evaluate, described
        (`runtime.build.describe`, as a spec's `candidates()` are).
    n_iter : int, optional
        Randomized search budget.
    random_state : int, optional
        Seed of the sampler, as RandomizedSearchCV's.
    scoring : str, optional
        sklearn scorer name; None uses the estimator's `score`.
    return_train_score : bool
        Also compute train scores (the notebook's report shows them).
    error_score, run_dir, max_retries, top_k, fold_by_fold
        As for `fleetcv.dispatch.job.Job`.
    """

    def __init__(
        self,
        view,
        estimator,
        params=None,
        *,
        candidates: list[dict] | None = None,
        n_iter: int | None = None,
        random_state: int | None = None,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        return_train_score: bool = True,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
        top_k: int = rs.TOP_K,
        fold_by_fold: bool | None = None,
    ):
        if candidates is None:
            candidates = _make_candidates(params, n_iter, random_state)
        super().__init__(
            view,
            estimator,
            search_job(candidates, return_train_score),
            scoring=scoring,
            error_score=error_score,
            run_dir=run_dir,
            max_retries=max_retries,
            top_k=top_k,
            fold_by_fold=fold_by_fold,
        )


def _make_candidates(params, n_iter, random_state) -> list[dict]:
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if params is None:
        raise ValueError("DistributedSearch needs params or candidates")
    if n_iter is None:
        drawn = ParameterGrid(params)
    else:
        drawn = ParameterSampler(params, n_iter=n_iter, random_state=random_state)
    # Described, as the journal keeps them; cv_results_ gives the values back.
    return [{k: describe(v) for k, v in c.items()} for c in drawn]
