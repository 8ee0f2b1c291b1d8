"""A job on the cluster: a kind's tasks driven through the one task runner.

Runs on the driver. `Job` composes a `fleetcv.kinds.Kind` (what the tasks
are, how their records fold into results) with a `TaskRunner` (how tasks
travel, come back, retry, abort and reach the journal). `SearchJob` and
`CurveJob` add the result attributes of their style of kind (a search's
`cv_results_` and `best_*`, a curve's `curve_`); the lifecycle
(`fleetcv.dispatch.lifecycle`) makes one straight from a run's meta.json
(`job_for`), and the notebook-style classes (`DistributedSearch`,
`LearningCurve`, `ValidationCurve`) are them with their own constructors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from fleetcv.dispatch.runner import ABORT_GRACE, Outcome, TaskRunner
from fleetcv.errors import ClusterLost, DiskFull, EnginesLost, HostError, SearchError
from fleetcv.kinds import kind_of
from fleetcv.kinds.base import PlanContext
from fleetcv.kinds.search import best_of
from fleetcv.rundir import results as rs
from fleetcv.rundir.run import write_results
from runtime.build import build
from runtime.folds import SplitSet, load_split_set

#: The error each way a run can stop before its end raises (`TaskRunner.outcome`).
OUTCOME_ERRORS = {
    Outcome.FIT_RAISED: SearchError,
    Outcome.ENGINES_LOST: EnginesLost,
    Outcome.CLUSTER_LOST: ClusterLost,
    Outcome.DISK_FULL: DiskFull,
    Outcome.COLLECTOR_FAILED: HostError,
}


class Job:
    """One job (a search, a curve, ...) of a registered kind on a LoadBalancedView.

    Parameters
    ----------
    view : ipyparallel.LoadBalancedView
        Where tasks go.
    estimator : sklearn estimator
        Cloned on the engines for every task, never mutated.
    job : dict
        The job description, as meta.json holds it (`kind` and what that
        kind needs: `candidates`, `curve`, ...).
    scoring : str, optional
        sklearn scorer name; None uses the estimator's `score`.
    error_score : float or "raise"
        Score of a failed fit. With "raise" the job stops at the first.
    run_dir : path, optional
        Where journal.jsonl, results.json and report.txt go; None keeps
        results in memory only.
    max_retries : int
        How often a task whose engine died is resubmitted.
    top_k : int
        Rows in a search's `report()`.
    fold_by_fold, task_timeout, on_timeout
        See `fleetcv.dispatch.runner.TaskRunner`.
    """

    def __init__(
        self,
        view,
        estimator,
        job: dict,
        *,
        scoring: str | None = None,
        error_score: float | str = math.nan,
        run_dir: str | Path | None = None,
        max_retries: int = 2,
        top_k: int = rs.TOP_K,
        fold_by_fold: bool | None = None,
        task_timeout: float | None = None,
        on_timeout: Callable[[str, int], str] | None = None,
    ):
        self.kind = kind_of(job)
        self.job = job
        self.estimator = estimator
        self.scoring = scoring
        self.error_score = error_score
        self.return_train_score = self.kind.train_scores(job)
        self.run_dir = Path(run_dir) if run_dir else None
        #: Why the refit after the search failed (its results stand), or None.
        self.refit_error: Exception | None = None
        self.top_k = top_k
        self.candidates = self.kind.candidates(job)
        #: journal records -> every row known (a kind whose rows depend on
        #: results, see `Kind.planner`), made at launch when the folds and
        #: engines are known; None for the other kinds.
        self._plan: Callable[[list], list[dict]] | None = None
        if self.kind.planner is not None:
            task_args = lambda c: self.kind.row_args(self.candidates[c])  # noqa: E731
        else:
            task_args = lambda c: self.kind.task_args(self.job, c)  # noqa: E731
        self.runner = TaskRunner(
            view,
            n_candidates=len(self.candidates),
            task_args=task_args,
            common={
                "estimator": estimator,
                "scoring": scoring,
                "error_score": error_score,
                "return_train_score": self.return_train_score,
                # The run's code snapshot (its spec's code:), None without:
                # an engine imports user code from it for this run only.
                "code_ref": (job.get("code") or {}).get("ref"),
            },
            worker=self.kind.worker,
            run_dir=self.run_dir,
            max_retries=max_retries,
            fold_by_fold=fold_by_fold,
            task_timeout=task_timeout,
            on_timeout=on_timeout,
            budget=job.get("budget"),
        )

    def _more_rows(self) -> int:
        """Rows the planner adds from the records so far; how many there are now."""
        rows = self._plan(self.runner.snapshot())
        self.candidates.extend(rows[len(self.candidates) :])
        return len(self.candidates)

    # ------------------------------------------------------------ the runner
    @property
    def view(self):
        """The LoadBalancedView tasks go to."""
        return self.runner.view

    @property
    def split(self) -> SplitSet | None:
        """The folds, once launched."""
        return self.runner.split

    @property
    def status(self) -> str:
        """new, running, finished, incomplete or aborted."""
        return self.runner.status

    @property
    def counters(self) -> dict:
        """Retried tasks, task errors, lost engines."""
        return self.runner.counters

    @property
    def n_messages(self) -> int:
        """Ipyparallel messages submitted (a message carries one or more tasks)."""
        return self.runner.n_messages

    @property
    def n_tasks(self) -> int:
        """Rows x folds."""
        return self.runner.n_tasks

    @property
    def n_done(self) -> int:
        """(row, fold) pairs with a score (including failed fits)."""
        return self.runner.n_done

    @property
    def records(self) -> list[dict]:
        """The journal records so far (a copy)."""
        return self.runner.snapshot()

    def launch(
        self,
        split_dir: str | Path | SplitSet,
        expected_times: dict[int, float] | None = None,
    ) -> Job:
        """Submit every (row, fold) not already in the journal (see `TaskRunner.launch`).

        Returns
        -------
        self
        """
        if self.kind.planner is not None:
            split = (
                split_dir
                if isinstance(split_dir, SplitSet)
                else load_split_set(split_dir)
            )
            client = getattr(self.view, "client", None)
            self._plan = self.kind.planner(
                self.job,
                PlanContext(
                    n_folds=split.n_folds,
                    n_engines=max(1, len(client.ids) if client is not None else 1),
                    run_dir=self.run_dir,
                ),
            )
            self.runner.on_row_done = self._more_rows
            # The rows the journal determines already (a resumed run's).
            self.runner.grow(self._more_rows())
            split_dir = split
        self.runner.launch(split_dir, expected_times)
        if self.kind.expected_tasks is not None:
            self.runner.expected_tasks = self.kind.expected_tasks(
                self.job, self.split.n_folds
            )
        return self

    def wait(
        self,
        timeout: float | None = None,
        progress: bool = False,
        report_every: float | None = None,
    ) -> bool:
        """Block until every task is accounted for (or `timeout` passes), then finalize.

        The arguments are `TaskRunner.wait`'s: a timeout in seconds (None:
        until the end), a progress bar on stderr with this job's report
        every `report_every` seconds.

        Returns
        -------
        bool
            True when nothing is pending any more.

        Raises
        ------
        SearchError
            When a fit raised with error_score="raise".
        EnginesLost, ClusterLost, DiskFull, HostError
            When every engine, the controller or the journal's disk is gone
            (`OUTCOME_ERRORS`). The run directory stays resumable.
        """
        ended = self.runner.wait(
            timeout,
            progress,
            report_every,
            postfix=self._postfix,
            report=self.report,
            desc=self.kind.name.replace("_", " "),
        )
        if not ended:
            return False
        if self.runner.outcome is Outcome.DISK_FULL:
            # Nothing more can be written there: results.json waits for the resume.
            self.runner.close()
            raise DiskFull(self.runner.fatal + self._resume_hint())
        self.finalize()
        if self.runner.fatal:
            error = OUTCOME_ERRORS[self.runner.outcome]
            raise error(self.runner.fatal + self._resume_hint())
        return True

    def _resume_hint(self) -> str:
        if self.run_dir is None:
            return ""
        if self.job.get("source") == "python":
            return f" Resume with: FleetSearchCV(..., resume={str(self.run_dir)!r})"
        return f" Resume with: invoke {self.kind.command} --resume {self.run_dir}"

    def abort(self, wait: bool = True, grace: float = ABORT_GRACE) -> None:
        """Cancel queued tasks; with `wait`, wait up to `grace` s for running ones and finalize.

        Tasks that finish during the grace period are journaled; the others
        are simply not in the journal, so a resume runs them again.
        """
        self.runner.abort(wait=wait, grace=grace)
        if wait:
            self.finalize()

    # --------------------------------------------------------------- results
    @property
    def results_(self) -> dict:
        """The kind's results of what has finished so far."""
        n_folds = self.split.n_folds if self.split else 0
        return self.kind.results(self.job, n_folds, self.runner.snapshot())

    def _postfix(self) -> str:
        parts = self.kind.postfix(self.job, self.results_)
        parts += [f"{k.split()[0]}={v}" for k, v in self.counters.items() if v]
        return " ".join(parts)

    def report(self, top_k: int | None = None, results: dict | None = None) -> str:
        """The notebook-style progress line and the kind's table (of `results`, default: now)."""
        text = self.kind.report(
            self.job,
            results if results is not None else self.results_,
            self.n_tasks,
            self.n_done,
            status=self.status if self.status != "new" else "running",
            extra=self.counters,
            top_k=top_k or self.top_k,
        )
        return text + budget_line(self.runner.stopped_by, self.job, self.n_done)

    def finalize(self) -> dict:
        """Write results.json and report.txt (when there is a run dir); return the results."""
        res = self.results_
        fields = {
            **self.kind.summary(self.job, res),
            "status": self.status,
            "n_tasks": self.n_tasks,
            "n_done": self.n_done,
            "counters": dict(self.counters),
        }
        if self.runner.stopped_by:
            fields["stopped_by"] = self.runner.stopped_by
        self.runner.close()
        if self.run_dir is not None:
            write_results(self.run_dir, res, self.report(results=res), **fields)
        return {**res, **fields}


def budget_line(stopped_by: str | None, job: dict, n_done: int) -> str:
    """The report's line on the budget that ended the run ("" when none did)."""
    if not stopped_by:
        return ""
    limit = (job.get("budget") or {}).get(stopped_by)
    unit = "fits" if stopped_by == "max_fits" else "s"
    return (
        f"\n\nStopped by its budget: {stopped_by} {limit:g} {unit} "
        f"({n_done} fits journaled)"
    )


class SearchJob(Job):
    """A job of a search-style kind: its results are scikit-learn's `cv_results_`."""

    @property
    def cv_results_(self) -> dict:
        """scikit-learn's `cv_results_` of what has finished so far (arrays, the values given).

        `results_` is the same as plain data (dict of lists, as results.json).
        """
        return rs.sklearn_cv_results(self.results_)

    @property
    def best_index_(self) -> int | None:
        """Index of the best candidate (rank 1 by the refit metric, or the refit callable's pick)."""
        return best_of(self.job, self.results_)[0]

    @property
    def best_params_(self) -> dict | None:
        """Parameters of the best candidate, as given (tuples, numpy scalars, estimators)."""
        idx, params, _ = best_of(self.job, self.results_)
        return None if idx is None else {k: build(v) for k, v in params.items()}

    @property
    def best_score_(self) -> float | None:
        """Mean test score of the best candidate (None with a refit callable)."""
        return best_of(self.job, self.results_)[2]

    def boxplot_parameters(
        self, out_dir: str | Path | None = None, display_train: bool = True
    ) -> Path:
        """Per-parameter boxplots of the fold scores, as in the notebook; returns the PNG path."""
        # matplotlib loads only when a plot is drawn, not with every search.
        from fleetcv.report.plots import boxplot_parameters

        return boxplot_parameters(
            # Several metrics: the one that ranks candidates.
            rs.metric_view(
                rs.readable_results(self.results_), self.job.get("ranking") or "score"
            ),
            out_dir or self.run_dir or ".",
            display_train=display_train,
        )


class CurveJob(Job):
    """A job of a curve-style kind (see `fleetcv.kinds.curves.curve_results`)."""

    @property
    def curve_(self) -> dict:
        """The curve of what has finished so far."""
        return self.results_

    @property
    def definition(self) -> dict:
        """The curve's definition (what meta.json stores as `curve`)."""
        return self.job["curve"]


#: The job class of each report style (`Kind.style`): the result
#: attributes a user of that style of kind expects.
BY_STYLE = {"search": SearchJob, "curve": CurveJob}


def job_for(view, estimator, job: dict, **options) -> Job:
    """The job of `job`'s kind (e.g. a run's meta.json), of its style's class.

    `options` are `Job`'s keyword arguments.
    """
    return BY_STYLE[kind_of(job).style](view, estimator, job, **options)
