"""FleetSearchCV: a scikit-learn search estimator whose fits run on a fleetcv cluster.

Runs on the driver (a script or a notebook). `fit(X, y)` goes through the same
lifecycle as `invoke search` (`runtime.dispatch.lifecycle`): the folds are
drawn by `cv` (anything `check_cv` takes) and persisted memory-mapped under
the local workdir (reused by digest), the cluster of `hosts` is used if it
runs, or started for the fit and stopped after it, every (candidate, fold)
is a task journaled in a run directory, the best candidate is refit on one
engine, and the search object gets scikit-learn's attributes
(`cv_results_`, `best_params_`, `best_estimator_`, ...) and, through
`BaseSearchCV`, its `predict`, `predict_proba`, `score`, ... An interrupted
fit is finished with `resume=RUN_DIR`.

A grid and a randomized search are one class: `param_grid` searches a grid,
`param_distributions` with `n_iter` draws candidates as
`RandomizedSearchCV` does (same `random_state`, same candidates).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search import BaseSearchCV

from runtime.engine.build import build, build_scorers, describe, is_multimetric
from runtime.errors import ConfigError, RunStopped, SearchError
from runtime.spec.data import Dataset


class FleetSearchCV(BaseSearchCV):
    """Exhaustive or randomized search over parameters, fitted on a fleetcv cluster.

    Parameters
    ----------
    estimator : estimator object
        Cloned for every fit, never mutated.
    param_grid : dict or list of dict, optional
        A grid, as GridSearchCV's (a list: several grids).
    param_distributions : dict or list of dict, optional
        Distributions or lists to sample from, as RandomizedSearchCV's
        (with `n_iter`).
    n_iter : int, optional
        Candidates to draw from `param_distributions`.
    random_state : int, optional
        Seeds the draw of candidates.
    cv : int, cross-validation generator or iterable
        As scikit-learn's `check_cv` takes it (5: (Stratified)KFold(5)).
    scoring : str, callable, list or dict, optional
        As GridSearchCV's; None uses the estimator's `score`.
    refit : bool or str
        Fit the best candidate on all the data (on one engine). With several
        metrics, the metric that names the best.
    error_score : float or "raise"
        The score of a failed fit.
    return_train_score : bool
        Also score the training folds.
    hosts : path, optional
        The hosts file of the cluster (default: as the command line, else
        this machine alone).
    engines : int, optional
        Engines on this machine when `fit` starts the cluster.
    run_dir : path, optional
        The run directory (default: a new one under `runs_root`).
    runs_root : path
        Where new run directories go.
    resume : path, optional
        A run directory of an interrupted fit to finish.
    max_retries : int
        Resubmissions of a task whose engine died.
    verbose : int
        0: silent; 1: the log and the report; 2: also a progress bar.
    remote : module, optional
        The remote layer (fabfile) when `hosts` has remote hosts.

    Attributes
    ----------
    cv_results_, best_index_, best_params_, best_score_, best_estimator_,
    refit_time_, n_splits_, scorer_, multimetric_ :
        scikit-learn's, with `cv_results_` equal to GridSearchCV's on the
        same folds.
    run_dir_ : Path
        The run directory of the fit (journal, results, report).
    """

    def __init__(
        self,
        estimator,
        param_grid=None,
        *,
        param_distributions=None,
        n_iter=None,
        random_state=None,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=False,
        hosts=None,
        engines=None,
        run_dir=None,
        runs_root="runs",
        resume=None,
        max_retries=2,
        verbose=1,
        remote=None,
    ):
        self.estimator = estimator
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.hosts = hosts
        self.engines = engines
        self.run_dir = run_dir
        self.runs_root = runs_root
        self.resume = resume
        self.max_retries = max_retries
        self.verbose = verbose
        self.remote = remote

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, groups=None, **fit_params):
        """Run the search on the cluster and set scikit-learn's attributes.

        Parameters
        ----------
        X : array-like, DataFrame, sparse matrix or list of str
            The data.
        y : array-like, optional
            The target.
        groups : array-like, optional
            Group labels for a group splitter.
        **fit_params : dict
            Passed to the estimator's `fit`, per-sample arrays sliced per fold.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            On a parameter fleetcv cannot take (see the message).
        SearchError
            When the search stopped before its end (aborted, incomplete):
            the run directory stays resumable with ``resume=``.
        """
        # Deferred: the lifecycle loads the cluster's modules (ipyparallel).
        from runtime.api import hosts_config
        from runtime.dispatch import lifecycle as lc

        spec = self._inline_spec(X, y, groups, fit_params)
        cfg = hosts_config(self.hosts, self.remote)
        log = print if self.verbose else _quiet
        if self.resume:
            plan = lc.plan_resume_inline(spec, self.resume, cfg, log=log)
        else:
            job = {**lc.search_job_of(spec), "source": "python"}
            plan = lc.plan_new(
                spec, job, cfg, runs_root=self.runs_root, run_dir=self.run_dir, log=log
            )
        options = lc.RunOptions(
            engines=self.engines,
            max_retries=self.max_retries,
            progress=self.verbose >= 2,
        )
        job = lc.execute(plan, cfg, self.remote, options, log=log)
        try:
            lc.finish(plan, job, log=log)
        except RunStopped as exc:
            raise SearchError(
                str(exc).replace("invoke search --resume", "resume=")
            ) from None
        self._set_results(plan, job, spec)
        return self

    def _inline_spec(self, X, y, groups, fit_params):
        """The search as the lifecycle takes it (see runtime.spec.inline)."""
        from runtime.spec.inline import (
            FixedCV,
            FixedSplits,
            InlineSpec,
            ObjectEstimator,
        )

        if callable(self.refit):
            raise ConfigError(
                "FleetSearchCV: refit: a callable is not supported here yet. Fix: refit=True "
                "or a metric name; pick from cv_results_ afterwards"
            )
        if is_multimetric(self.scoring) and self.refit is True:
            raise ConfigError(
                f"FleetSearchCV: refit=True is ambiguous with several metrics "
                f"({', '.join(self.scoring)}). Fix: refit='<one of them>' or refit=False"
            )
        splitter = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        folds = FixedSplits(tuple(splitter.split(X, y, groups)))
        candidates = tuple(self._candidates())
        y = None if y is None else np.asarray(y)
        return InlineSpec(
            name=type(self.estimator).__name__,
            estimator=ObjectEstimator(clone(self.estimator)),
            cv=FixedCV(folds, type(splitter).__name__),
            data=Dataset(
                X, y, None if groups is None else np.asarray(groups), dict(fit_params)
            ),
            candidate_list=candidates,
            scoring=self.scoring,
            refit=self.refit if isinstance(self.refit, str) else bool(self.refit),
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            description={
                "estimator": describe(self.estimator),
                "candidates": list(candidates),
                "scoring": self.scoring,
                "cv": repr(splitter),
                "error_score": repr(self.error_score),
                "return_train_score": self.return_train_score,
            },
        )

    def _candidates(self):
        """The candidates as plain data, in GridSearchCV's / RandomizedSearchCV's order."""
        if (self.param_grid is None) == (self.param_distributions is None):
            raise ConfigError(
                "FleetSearchCV: give exactly one of param_grid and param_distributions. "
                "Fix: FleetSearchCV(est, {'C': [1, 10]}) or param_distributions=..., n_iter=10"
            )
        if self.param_grid is not None:
            draw = ParameterGrid(self.param_grid)
        else:
            draw = ParameterSampler(
                self.param_distributions,
                n_iter=self.n_iter or 10,
                random_state=self.random_state,
            )
        for cand in draw:
            plain = {k: describe(v) for k, v in cand.items()}
            try:
                json.dumps(plain)
            except TypeError as exc:
                raise ConfigError(
                    f"FleetSearchCV: a parameter value cannot go to the journal ({exc}). "
                    "Fix: use numbers, strings, lists or scikit-learn estimators as values"
                ) from exc
            yield plain

    def _set_results(self, plan, job, spec) -> None:
        """scikit-learn's attributes, from the run's results."""
        import joblib

        from runtime.rundir import journal as jn

        res = json.loads((plan.run_dir / jn.RESULTS).read_text())
        self.run_dir_ = Path(plan.run_dir)
        self.multimetric_ = is_multimetric(self.scoring)
        self.scorer_ = build_scorers(self.scoring, self.estimator)
        if self.multimetric_:
            self.scorer_ = dict(self.scorer_)
        self.n_splits_ = spec.cv.n_splits
        self.cv_results_ = cv_results_arrays(job.cv_results_)
        if self.refit is not False:
            self.best_index_ = res["best_index"]
            self.best_params_ = {k: build(v) for k, v in res["best_params"].items()}
            if res.get("best_score") is not None:
                self.best_score_ = res["best_score"]
            self.best_estimator_ = joblib.load(self.run_dir_ / res["best_estimator"])
            self.refit_time_ = res["refit_time"]


def cv_results_arrays(results: dict) -> dict:
    """results.json's lists as scikit-learn's `cv_results_`: arrays, masked params, objects."""
    out = {}
    for key, values in results.items():
        if key == "params":
            out[key] = [{k: build(v) for k, v in p.items()} for p in values]
        elif key.startswith("param_"):
            arr = np.ma.MaskedArray(np.empty(len(values), dtype=object), mask=True)
            for i, v in enumerate(values):
                if v is not None:
                    arr[i] = build(v)
            out[key] = arr
        elif key.startswith("rank_"):
            out[key] = np.asarray(values, dtype=np.int32)
        elif key.endswith(("_host", "_engine")):
            out[key] = np.asarray(values, dtype=object)
        else:
            out[key] = np.asarray(
                [np.nan if v is None else v for v in values], dtype=float
            )
    return out


def _quiet(*_args, **_kwargs) -> None:
    """A log that says nothing (verbose=0)."""


__all__ = ["FleetSearchCV", "cv_results_arrays"]
