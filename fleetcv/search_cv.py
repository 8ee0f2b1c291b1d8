"""FleetSearchCV: a scikit-learn search estimator whose fits run on a fleetcv cluster.

Runs on the driver (a script or a notebook). `fit(X, y)` goes through the same
lifecycle as `invoke search` (`fleetcv.dispatch.lifecycle`): the folds are
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
import scipy.sparse as sp
from sklearn.base import clone, is_classifier
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import indexable

from fleetcv.errors import ConfigError, RunStopped, SearchError
from fleetcv.rundir.results import sklearn_cv_results
from fleetcv.spec.data import Dataset
from fleetcv.spec.search import parse_task_timeout
from runtime.build import build_scorers, describe, is_multimetric

#: The attributes of a fitted Halving*SearchCV that results.json holds.
HALVING_ATTRIBUTES = (
    "n_resources_",
    "n_candidates_",
    "n_iterations_",
    "n_required_iterations_",
    "n_possible_iterations_",
    "min_resources_",
    "max_resources_",
)
#: scikit-learn's learning_curve default: five sizes from 10% to all of the training fold.
DEFAULT_TRAIN_SIZES = np.linspace(0.1, 1.0, 5)


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
        Seeds the draw of candidates (and a halving search's subsamples).
    search : {"grid", "random", "halving"}, optional
        Default: "grid" with `param_grid`, "random" with
        `param_distributions`. "halving" is successive halving, as
        HalvingGridSearchCV (with `param_grid`) or HalvingRandomSearchCV
        (with `param_distributions`), with their parameters below.
    factor, resource, max_resources, aggressive_elimination :
        A halving search's, as scikit-learn's (defaults 3, "n_samples",
        "auto", False).
    min_resources : int, "smallest" or "exhaust", optional
        A halving search's; default as scikit-learn's: "exhaust" for a grid,
        "smallest" for distributions.
    n_candidates : int or "exhaust"
        Candidates a halving search draws from `param_distributions`.
    cv : int, cross-validation generator or iterable
        As scikit-learn's `check_cv` takes it (5: (Stratified)KFold(5)).
    scoring : str, callable, list or dict, optional
        As GridSearchCV's; None uses the estimator's `score`.
    refit : bool, str or callable
        Fit the best candidate on all the data (on one engine). With several
        metrics, the metric that names the best; a callable
        ``cv_results_ -> index`` picks it, as in scikit-learn (a top-level
        function of a module or of the notebook; no `best_score_` then).
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
        0: silent; 1: the log, the report, and while a blocking `fit` runs a
        progress bar and the top candidates (refreshed in place in a
        notebook; Ctrl-C or "interrupt kernel" aborts, resumable).
    remote : object, optional
        Serves the SSH hosts instead of `fleetcv.backends.ssh` (a test's);
        by default each host's backend does.
    requirements : list of str, optional
        pip requirement lines (or wheels' paths) every host installs before
        the fit, offline from a wheelhouse made here, once per host; this
        machine must have them already.
    code : list of str, optional
        Your own modules (folders, .py files) that parameter values name:
        snapshotted, pushed to every host and imported there for this fit,
        as a spec's ``code:``.
    task_timeout : float, optional
        Seconds a fit may run. One that runs longer has its engine stopped
        and replaced and is a failed fit (error_score), "timed out after N
        s"; None: no limit.

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
        requirements=None,
        code=None,
        task_timeout=None,
        search=None,
        factor=3,
        resource="n_samples",
        min_resources=None,
        max_resources="auto",
        aggressive_elimination=False,
        n_candidates="exhaust",
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
        self.requirements = requirements
        self.code = code
        self.task_timeout = task_timeout
        self.search = search
        self.factor = factor
        self.resource = resource
        self.min_resources = min_resources
        self.max_resources = max_resources
        self.aggressive_elimination = aggressive_elimination
        self.n_candidates = n_candidates

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
        return self._fit(X, y, groups, fit_params, progress=self.verbose >= 1)

    def _fit(self, X, y, groups, fit_params, progress: bool):
        # Deferred: the lifecycle loads the cluster's modules (ipyparallel).
        from fleetcv.api import backends
        from fleetcv.dispatch import lifecycle as lc
        from fleetcv.spec import load_hosts

        spec = self._inline_spec(X, y, groups, fit_params)
        cfg = load_hosts(self.hosts)
        log = print if self.verbose else _quiet
        self._job = None
        if self.resume:
            plan = lc.plan_resume_inline(spec, self.resume, cfg, log=log)
        else:
            job = _from_python(lc.search_job_of(spec))
            plan = lc.plan_new(
                spec, job, cfg, runs_root=self.runs_root, run_dir=self.run_dir, log=log
            )
        options = lc.RunOptions(
            engines=self.engines,
            max_retries=self.max_retries,
            progress=progress,
            on_launch=self._launched,
            task_timeout=parse_task_timeout(
                "FleetSearchCV", "task_timeout", self.task_timeout
            ),
        )
        job = lc.execute(plan, cfg, backends(self.remote), options, log=log)
        resume = f"FleetSearchCV(..., resume={str(plan.run_dir)!r}).fit(X, y)"
        _finish(lc, plan, job, log, resume)
        _raise_or_warn_about_fit_failures(plan.run_dir, self.error_score)
        self._set_results(plan, job, spec)
        return self

    # ----------------------------------------------------- the notebook's way
    def fit_async(self, X, y=None, *, groups=None, **fit_params):
        """Start `fit` in the background and return at once (the original notebook's `launch`).

        While it runs, `report()`, `progress` and `boxplot_parameters()` show
        where it is; `wait()` blocks until the end and sets the attributes,
        `abort()` stops it and leaves a resumable run.

        Returns
        -------
        self
        """
        import threading

        self._job, self._error = None, None
        self._launched_event = threading.Event()

        def run():
            try:
                # No bar: the notebook asks report() and progress instead.
                self._fit(X, y, groups, fit_params, progress=False)
            except BaseException as exc:  # noqa: BLE001 - handed to wait()
                self._error = exc
            finally:
                self._launched_event.set()

        self._thread = threading.Thread(target=run, name="fleetcv-fit", daemon=True)
        self._thread.start()
        return self

    def _launched(self, job) -> None:
        self._job = job
        event = getattr(self, "_launched_event", None)
        if event is not None:
            event.set()

    def _running_job(self, timeout: float = 120.0):
        """The job of a fit_async, once its tasks are submitted (bounded wait)."""
        event = getattr(self, "_launched_event", None)
        if event is None:
            raise ConfigError(
                "FleetSearchCV: nothing was launched. Fix: search.fit_async(X, y) first"
            )
        if not event.wait(timeout):
            raise SearchError(
                f"FleetSearchCV: the fit did not start within {timeout:.0f} s"
            )
        if self._job is None:
            self.wait()  # it failed before launching: raise its error
        return self._job

    def report(self, top_k: int = 5) -> str:
        """The notebook's report of a running (or ended) fit: progress and the top candidates."""
        return self._running_job().report(top_k=top_k)

    @property
    def progress(self) -> float:
        """Share of the (candidate, fold) fits done, 0 to 1."""
        job = self._running_job()
        return job.n_done / job.n_tasks if job.n_tasks else 0.0

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a fit_async ends (or `timeout` s pass); raise its error, if any.

        Returns
        -------
        bool
            True when it ended (the attributes are set), False on timeout.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return True

    def abort(self) -> None:
        """Stop a fit_async: queued fits are cancelled, finished ones kept; resumable."""
        self._running_job().abort(wait=False)

    def boxplot_parameters(self, display_train: bool = True):
        """Per-parameter boxplots of the fold scores so far (the notebook's plot).

        Returns
        -------
        IPython.display.Image or Path
            The figure, shown inline by a notebook (the PNG's path without IPython).
        """
        job = self._job
        if job is None:
            job = self._running_job()
        path = job.boxplot_parameters(display_train=display_train)
        try:
            from IPython.display import Image
        except ImportError:
            return path
        return Image(filename=str(path))

    def _inline_spec(self, X, y, groups, fit_params):
        """The search as the lifecycle takes it (see fleetcv.spec.inline)."""
        if is_multimetric(self.scoring) and self.refit is True:
            raise ConfigError(
                f"FleetSearchCV: refit=True is ambiguous with several metrics "
                f"({', '.join(self.scoring)}). Fix: refit='<one of them>' or refit=False"
            )
        search, halving = self._search_kind()
        drawn = halving is not None and halving["flavour"] == "random"
        spec = inline_spec(
            self.estimator,
            (X, y, groups, fit_params),
            self.cv,
            scoring=self.scoring,
            refit=_refit_of(self.refit),
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            # A halving search draws its candidates once the data says how many.
            candidates=() if drawn else tuple(self._candidates()),
        )
        from dataclasses import replace

        spec = replace(
            spec,
            search=search,
            flavour="random" if self.param_grid is None else "grid",
            settings=halving,
            random_state=self.random_state,
            draw=self._draw if drawn else None,
            description={
                **spec.description,
                "search": search,
                **({"halving": halving} if halving else {}),
                **(
                    {
                        "param_distributions": repr(self.param_distributions),
                        "random_state": self.random_state,
                    }
                    if drawn
                    else {}
                ),
            },
        )
        if self.requirements or self.code:
            from fleetcv.spec.code import parse_code, parse_requirements

            where, here = "FleetSearchCV", Path.cwd()
            spec = replace(
                spec,
                requirements=parse_requirements(where, self.requirements, here),
                code=parse_code(where, self.code, here),
            )
        return spec

    def _search_kind(self) -> tuple[str, dict | None]:
        """The search (grid, random or halving) and a halving search's settings.

        Raises
        ------
        ConfigError
            For another search, or halving settings scikit-learn would refuse.
        """
        if (self.param_grid is None) == (self.param_distributions is None):
            raise ConfigError(
                "FleetSearchCV: give exactly one of param_grid and param_distributions. "
                "Fix: FleetSearchCV(est, {'C': [1, 10]}) or param_distributions=..., n_iter=10"
            )
        default = "grid" if self.param_grid is not None else "random"
        search = default if self.search is None else self.search
        if search not in ("grid", "random", "halving") or (
            search != "halving" and search != default
        ):
            raise ConfigError(
                f"FleetSearchCV: search={search!r} with "
                f"{'param_grid' if default == 'grid' else 'param_distributions'}. "
                f"Fix: search={default!r} or search='halving'"
            )
        if search != "halving":
            return search, None
        from fleetcv.spec.strategies import check_resource_not_searched, parse_halving

        raw = {
            "factor": self.factor,
            "resource": self.resource,
            "max_resources": self.max_resources,
            "aggressive_elimination": self.aggressive_elimination,
            **(
                {}
                if self.min_resources is None
                else {"min_resources": self.min_resources}
            ),
            **({} if default == "grid" else {"n_candidates": self.n_candidates}),
        }
        settings = parse_halving("FleetSearchCV", raw, self.estimator)
        grids = self.param_grid if default == "grid" else self.param_distributions
        check_resource_not_searched(
            "FleetSearchCV", settings, grids if isinstance(grids, list) else [grids]
        )
        if is_multimetric(self.scoring) or not isinstance(self.refit, bool):
            raise ConfigError(
                "FleetSearchCV: a halving search keeps candidates by one metric and "
                f"refits by it (scoring={self.scoring!r}, refit={self.refit!r}). Fix: "
                "one scorer, and refit=True or False"
            )
        return search, settings

    def _candidates(self, n_iter: int | None = None):
        """The candidates, described, in GridSearchCV's / RandomizedSearchCV's order."""
        if self.param_grid is not None:
            draw = ParameterGrid(self.param_grid)
        else:
            draw = ParameterSampler(
                self.param_distributions,
                n_iter=n_iter or self.n_iter or 10,
                random_state=self.random_state,
            )
        for cand in draw:
            yield {k: _described(k, v) for k, v in cand.items()}

    def _draw(self, n: int) -> list[dict]:
        """The `n` candidates HalvingRandomSearchCV draws from `param_distributions`."""
        return list(self._candidates(n_iter=n))

    def _set_results(self, plan, job, spec) -> None:
        """scikit-learn's attributes, from the run's results."""
        import joblib

        from fleetcv.rundir import journal as jn

        res = json.loads((plan.run_dir / jn.RESULTS).read_text())
        self.run_dir_ = Path(plan.run_dir)
        self.multimetric_ = is_multimetric(self.scoring)
        self.scorer_ = build_scorers(self.scoring, self.estimator)
        if self.multimetric_:
            self.scorer_ = dict(self.scorer_)
        self.n_splits_ = spec.cv.n_splits
        self.cv_results_ = sklearn_cv_results(job.results_)
        # As BaseSearchCV: the best is named with one metric, or with a refit one.
        if (self.refit is not False or not self.multimetric_) and res["best_params"]:
            self.best_index_ = res["best_index"]
            # As BaseSearchCV: the very dict of cv_results_["params"].
            self.best_params_ = self.cv_results_["params"][self.best_index_]
            if res.get("best_score") is not None:
                self.best_score_ = res["best_score"]
        if self.refit is not False:
            self.best_estimator_ = joblib.load(self.run_dir_ / res["best_estimator"])
            self.refit_time_ = res["refit_time"]
        # A halving search's own attributes, as Halving*SearchCV's.
        for name in HALVING_ATTRIBUTES:
            if name in res:
                setattr(self, name, res[name])

    #: What a fit in progress holds (a thread, the job on the cluster): not
    #: part of a fitted search, so a pickle or a deepcopy leaves it out.
    _RUNNING = ("_job", "_thread", "_launched_event", "_error")

    def __getstate__(self):
        """The fitted search without its running fit's handles (picklable)."""
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in self._RUNNING}


def _from_python(job):
    """A search's job (or its function of the folds) marked as made by FleetSearchCV."""
    if callable(job):
        return lambda split: {**job(split), "source": "python"}
    return {**job, "source": "python"}


def _described(name: str, value):
    """A parameter value as the journal keeps it (`describe`: build gives it back).

    Raises
    ------
    ConfigError
        For a value that cannot be pickled, naming the parameter.
    """
    try:
        return describe(value)
    except TypeError as exc:
        raise ConfigError(
            f"FleetSearchCV: the value of {name!r} cannot go to the engines and the "
            f"journal: {exc}. Fix: give a value that pickles (numbers, strings, "
            "tuples, arrays, estimators, functions of a module)"
        ) from exc


def _refit_of(refit) -> bool | str:
    """`refit` as the run's job keeps it: a bool, a metric, or a callable's import path.

    The driver calls the callable on the results (as BaseSearchCV does), found
    again by its path: a function defined with `def` at the top level of a
    module or of the notebook (its path is then ``__main__.name``).

    Raises
    ------
    ConfigError
        For a callable that its path does not find (a lambda, a nested function).
    """
    if not callable(refit):
        return refit if isinstance(refit, str) else bool(refit)
    from runtime.build import import_path

    path = f"{getattr(refit, '__module__', None)}.{getattr(refit, '__qualname__', '?')}"
    try:
        found = import_path(path) is refit
    except Exception:  # noqa: BLE001 - any failure means: not found by its path
        found = False
    if not found:
        raise ConfigError(
            f"FleetSearchCV: refit={refit!r} cannot be found again by its import path "
            f"({path}). Fix: define it with def at the top level of a module or of the "
            "notebook"
        )
    return path


def inline_spec(
    estimator,
    data: tuple,
    cv,
    *,
    scoring=None,
    refit: bool | str = False,
    error_score=np.nan,
    return_train_score: bool = True,
    candidates: tuple = (),
):
    """A search or curve from Python as the lifecycle takes it (`fleetcv.spec.inline`).

    `data` is (X, y, groups, fit_params); `cv` anything `check_cv` takes.
    """
    from fleetcv.dispatch.byvalue import register_user_modules
    from fleetcv.spec.inline import FixedCV, FixedSplits, InlineSpec, ObjectEstimator

    # The user's classes and functions from uninstalled modules go to the
    # engines by value, as a notebook's do (the hosts lack those modules).
    register_user_modules(estimator, scoring)
    X, y, groups, fit_params = data
    # As BaseSearchCV: lengths checked, array-likes without indexing made arrays.
    X, y, groups = indexable(X, y, groups)
    if sp.issparse(X) and X.format not in ("csr", "csc"):
        X = X.tocsr()  # folds take rows: COO, DOK, LIL, ... as CSR
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    folds = FixedSplits(tuple(splitter.split(X, y, groups)))
    return InlineSpec(
        name=type(estimator).__name__,
        estimator=ObjectEstimator(clone(estimator)),
        cv=FixedCV(folds, type(splitter).__name__),
        data=Dataset(
            X,
            None if y is None else np.asarray(y),
            None if groups is None else np.asarray(groups),
            dict(fit_params or {}),
        ),
        candidate_list=candidates,
        scoring=scoring,
        refit=refit,
        error_score=error_score,
        return_train_score=return_train_score,
        description={
            "estimator": describe(estimator),
            "candidates": list(candidates),
            "scoring": scoring,
            "cv": repr(splitter),
            "error_score": repr(error_score),
            "return_train_score": return_train_score,
        },
    )


def _raise_or_warn_about_fit_failures(run_dir, error_score) -> None:
    """As BaseSearchCV: ValueError when every fit failed, FitFailedWarning when some did.

    The message is scikit-learn's, with the engines' tracebacks from the
    journal (each distinct one once, with its count).
    """
    import warnings
    from collections import Counter

    from sklearn.exceptions import FitFailedWarning

    from fleetcv.rundir import journal as jn
    from fleetcv.rundir.results import latest_records
    from runtime.record import FIT_FAILED

    records = latest_records(jn.read_journal(Path(run_dir) / jn.JOURNAL)).values()
    errors = [r.get("error") or "" for r in records if r["status"] == FIT_FAILED]
    if not errors:
        return
    summary = "\n".join(
        f"\n{'-' * 80}\n{n} fits failed with the following error:\n{error}"
        for error, n in Counter(errors).items()
    )
    if len(errors) == len(records):
        raise ValueError(
            f"\nAll the {len(errors)} fits failed.\nIt is very likely that your model "
            "is misconfigured.\nYou can try to debug the error by setting "
            f"error_score='raise'.\n\nBelow are more details about the failures:\n{summary}"
        )
    warnings.warn(
        f"\n{len(errors)} fits failed out of a total of {len(records)}.\nThe score on "
        f"these train-test partitions for these parameters will be set to {error_score}."
        "\nIf these failures are not expected, you can try to debug them by setting "
        f"error_score='raise'.\n\nBelow are more details about the failures:\n{summary}",
        FitFailedWarning,
        stacklevel=3,
    )


def _estimator_error(error: Exception) -> Exception:
    """A failed refit as BaseSearchCV's raises it: the estimator's exception type.

    The engine's error (its cause, an ipyparallel RemoteError) names the
    type; a built-in one (ValueError, TypeError, ...) is raised as such with
    fleetcv's message and the engine's traceback, anything else as SearchError.
    """
    import builtins

    ename = getattr(error.__cause__, "ename", None)
    cls = getattr(builtins, ename, None) if isinstance(ename, str) else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(str(error))
        except TypeError:  # a built-in that takes other arguments (UnicodeError)
            pass
    return SearchError(str(error))


def _finish(lc, plan, job, log, resume: str) -> None:
    """Report the run; an aborted or incomplete one is a SearchError saying how to resume."""
    try:
        lc.finish(plan, job, log=log)
    except RunStopped:
        refit_error = job.refit_error
        if job.status == "finished" and refit_error:
            raise _estimator_error(refit_error) from None
        raise SearchError(
            f"{plan.kind.noun} {job.status}; the run stays resumable: {resume}"
        ) from None


def fleetcv_learning_curve(
    estimator,
    X,
    y=None,
    *,
    groups=None,
    train_sizes=DEFAULT_TRAIN_SIZES,
    cv=None,
    scoring=None,
    error_score=np.nan,
    return_times=False,
    params=None,
    hosts=None,
    engines=None,
    runs_root="runs",
    verbose=0,
    remote=None,
):
    """scikit-learn's `learning_curve`, its fits on the cluster (same signature and returns).

    Each (size, fold) is a task that fits on the first k rows of the
    memory-mapped training fold, as `learning_curve(..., shuffle=False)`;
    the run directory is left under `runs_root`. `hosts`, `engines`,
    `verbose` and `remote` are FleetSearchCV's.

    Returns
    -------
    train_sizes_abs, train_scores, test_scores[, fit_times, score_times] : ndarray
    """
    from fleetcv.kinds.curve_flags import max_train_size, translate_train_sizes
    from fleetcv.kinds.curves import curve_job, learning_definition

    spec = inline_spec(
        estimator, (X, y, groups, params), cv, scoring=scoring, error_score=error_score
    )
    fractions = [float(v) for v in np.asarray(train_sizes)]

    def job(split):
        sizes = translate_train_sizes(np.asarray(train_sizes), max_train_size(split))
        definition = learning_definition(sizes, {}, _plain_scoring(scoring), fractions)
        return {**curve_job(definition), "source": "python"}

    curve = _run_curve(spec, job, hosts, engines, runs_root, verbose, remote)
    out = (
        np.asarray(curve["train_sizes_abs"]),
        np.asarray(curve["train_scores"]),
        np.asarray(curve["test_scores"]),
    )
    if return_times:
        out += (np.asarray(curve["fit_times"]), np.asarray(curve["score_times"]))
    return out


def fleetcv_validation_curve(
    estimator,
    X,
    y=None,
    *,
    param_name,
    param_range,
    groups=None,
    cv=None,
    scoring=None,
    error_score=np.nan,
    params=None,
    hosts=None,
    engines=None,
    runs_root="runs",
    verbose=0,
    remote=None,
):
    """scikit-learn's `validation_curve`, its fits on the cluster (same signature and returns).

    Returns
    -------
    train_scores, test_scores : ndarray of shape (len(param_range), n_folds)
    """
    from fleetcv.kinds.curves import curve_job, validation_definition

    spec = inline_spec(
        estimator, (X, y, groups, params), cv, scoring=scoring, error_score=error_score
    )
    values = [describe(v) for v in param_range]
    definition = validation_definition(param_name, values, {}, _plain_scoring(scoring))
    job = {**curve_job(definition), "source": "python"}
    curve = _run_curve(spec, job, hosts, engines, runs_root, verbose, remote)
    return np.asarray(curve["train_scores"]), np.asarray(curve["test_scores"])


def _plain_scoring(scoring):
    """The scoring as meta.json can keep it (a scorer object by its repr)."""
    return scoring if scoring is None or isinstance(scoring, str) else repr(scoring)


def _run_curve(spec, job, hosts, engines, runs_root, verbose, remote) -> dict:
    """A curve from Python through the lifecycle; its results (scikit-learn's names)."""
    from fleetcv.api import backends
    from fleetcv.dispatch import lifecycle as lc
    from fleetcv.spec import load_hosts

    cfg = load_hosts(hosts)
    log = print if verbose else _quiet
    plan = lc.plan_new(spec, job, cfg, runs_root=runs_root, log=log)
    options = lc.RunOptions(engines=engines, progress=verbose >= 1)
    ended = lc.execute(plan, cfg, backends(remote), options, log=log)
    _finish(lc, plan, ended, log, "a curve made in Python is run again, not resumed")
    return ended.curve_


def _quiet(*_args, **_kwargs) -> None:
    """A log that says nothing (verbose=0)."""


__all__ = [
    "FleetSearchCV",
    "fleetcv_learning_curve",
    "fleetcv_validation_curve",
    "inline_spec",
]
