"""The search kind: grid and randomized searches, results as scikit-learn's cv_results_.

Runs on the driver. A row is one parameter combination; its tasks evaluate
it on every fold. The results are `fleetcv.rundir.results.build_cv_results`
and the best candidate is GridSearchCV's `best_*` among the candidates
scored on every fold.
"""

from __future__ import annotations

from dataclasses import replace

from fleetcv.errors import SearchError
from fleetcv.kinds.base import Kind, SpecSection
from fleetcv.rundir import results as rs

NAME = "search"


def search_job(
    candidates: list[dict],
    return_train_score: bool = True,
    metrics: list[str] | None = None,
    ranking: str = "score",
    refit: bool | str = False,
) -> dict:
    """The job description of a search (what its meta.json holds).

    Parameters
    ----------
    candidates : list of dict
        The parameter combinations.
    return_train_score : bool
        Whether tasks score the training rows too.
    metrics : list of str, optional
        The metrics' names (default ``["score"]``: one metric).
    ranking : str
        The metric that ranks candidates and names the best (the refit one).
    refit : bool or str
        Whether the best candidate is fitted on all the data at the end: a
        metric name or True (by `ranking`), an import path of a callable
        cv_results -> best index (scikit-learn's refit callable), or False.
    """
    return {
        "kind": NAME,
        "candidates": [dict(c) for c in candidates],
        "return_train_score": bool(return_train_score),
        "metrics": list(metrics or ["score"]),
        "ranking": ranking,
        "refit": refit,
    }


def _metrics(job: dict) -> list[str]:
    # Runs from before multi-metric scoring have one metric.
    return job.get("metrics") or ["score"]


def _ranking(job: dict) -> str:
    return job.get("ranking") or "score"


def _candidates(job: dict) -> list[dict]:
    return job["candidates"]


def _task_args(job: dict, c: int) -> dict:
    return {"params": job["candidates"][c]}


def _train_scores(job: dict) -> bool:
    return job.get("return_train_score", True)


def _results(job: dict, n_folds: int, records) -> dict:
    return rs.build_cv_results(
        job["candidates"],
        n_folds,
        records,
        job.get("return_train_score", True),
        _metrics(job),
    )


def best_of(job: dict, results: dict) -> tuple[int | None, dict | None, float | None]:
    """The best candidate (index, params, score), as scikit-learn's `best_*_`.

    By the ranking metric among the candidates scored on every fold; with a
    refit callable (an import path), the index it picks from the results
    and no score (scikit-learn sets no `best_score_` then). A job's `best`
    names another rule: "last_iteration" (a halving search's), or
    ``{"highest": column}``, the best of the rows with the highest value of
    that results column (`fleetcv.rundir.results.best_in_last_iteration`).

    Raises
    ------
    SearchError
        When the refit callable raises or returns no valid index.
    """
    if rs.every_fit_failed(results):
        return None, None, None  # no best, no refit: scikit-learn raises
    refit = job.get("refit")
    if isinstance(refit, str) and "." in refit:
        if rs.n_complete(results) < len(results["params"]):
            return None, None, None  # the callable gets complete results only
        # Once refit, the run's choice is recorded: a report made later, in a
        # process where a notebook's callable does not import, keeps it.
        done = job.get("refitted") or {}
        idx = done.get("best_index")
        if idx is None:
            idx = _refit_index(refit, results)
        return idx, results["params"][idx], None
    best = job.get("best")
    if best == "last_iteration":
        # A halving search's best is its last iteration's (scikit-learn's).
        return rs.best_in_last_iteration(results)
    if isinstance(best, dict) and "highest" in best:
        # A kind's own rule: the best of the rows with the highest value of
        # one results column (e.g. Hyperband's fits at max resources).
        return rs.best_in_last_iteration(results, best["highest"])
    return rs.best(results, complete_only=True, metric=_ranking(job))


def _refit_index(refit: str, results: dict) -> int:
    """What scikit-learn's `refit=callable` gets: its `cv_results_`; an index back."""
    import numpy as np

    from runtime.build import import_path

    try:
        idx = import_path(refit)(rs.sklearn_cv_results(results))
    except Exception as exc:  # noqa: BLE001 - the user's callable: its error, named
        raise SearchError(
            f"refit: {refit}(cv_results) raised {type(exc).__name__}: {exc}. Fix: "
            "correct the callable; the run's results are written, resume it to refit"
        ) from exc
    n = len(results["params"])
    if (
        isinstance(idx, bool)
        or not isinstance(idx, int | np.integer)
        or not 0 <= idx < n
    ):
        raise SearchError(
            f"refit: {refit}(cv_results) returned {idx!r}, not a candidate index in "
            f"[0, {n - 1}]. Fix: return an integer index, as scikit-learn's refit callable does"
        )
    return int(idx)


def _summary(job: dict, results: dict) -> dict:
    try:
        idx, params, score = best_of(job, results)
    except SearchError as exc:
        # The results are still written; the refit step reports the error.
        return {
            "best_index": None,
            "best_params": None,
            "best_score": None,
            "refit_error": str(exc),
        }
    out = {"best_index": idx, "best_params": params, "best_score": score}
    # What user code ran: the code: snapshot's digest, the requirements.
    out.update({key: job[key] for key in ("code", "requirements") if job.get(key)})
    refitted = job.get("refitted")
    if refitted and refitted.get("best_index") == idx:
        # scikit-learn's refit_time_, and where the fitted model is.
        out["refit_time"] = refitted["refit_time"]
        out["best_estimator"] = refitted["file"]
    return out


def _report(job, results, n_tasks, n_done, status="running", extra=None, top_k=None):
    return rs.format_report(
        results,
        n_tasks,
        n_done,
        top_k=rs.TOP_K if top_k is None else top_k,
        status=status,
        extra=extra,
        metric=_ranking(job),
    )


def _postfix(job: dict, results: dict) -> list[str]:
    _, _, score = rs.best(results, metric=_ranking(job))
    parts = [f"best={score:.5f}"] if score is not None else []
    failed = sum(results["n_failed_fits"])
    if failed:
        parts.append(f"failed={failed}")
    return parts


def planned_search(**fields) -> Kind:
    """A search kind whose rows a planner makes as results come (halving, ASHA, Optuna).

    The search's command, report style and run names; `fields` are the
    kind's own (name, rows, results, summary, report, postfix, planner,
    row_args, expected_tasks, and candidates when known from the job).
    """
    common = {
        "command": NAME,
        "noun": "search",
        "style": "search",
        "candidates": lambda job: [],
        "task_args": lambda job, c: {},
        "train_scores": _train_scores,
        "run_name": lambda spec_name, job: spec_name,
    }
    return Kind(**{**common, **fields})


def job_of(spec, split=None) -> dict:
    """The job of a `search: grid` or `search: random` spec (its candidates drawn now)."""
    return {
        **search_job(
            spec.candidates(),
            spec.return_train_score,
            metrics=spec.metrics,
            ranking=spec.ranking,
            refit=spec.refit,
        ),
        "n_iter": spec.raw.get("n_iter"),
    }


SEARCH = Kind(
    name=NAME,
    command="search",
    noun="search",
    rows="candidates",
    style="search",
    candidates=_candidates,
    task_args=_task_args,
    train_scores=_train_scores,
    results=_results,
    summary=_summary,
    report=_report,
    postfix=_postfix,
    run_name=lambda spec_name, job: spec_name,
)

#: `search: grid`: ParameterGrid's candidates (or n_iter of them sampled).
GRID = replace(SEARCH, search="grid", spec=SpecSection(section=None, job_of=job_of))
#: `search: random`: n_iter candidates drawn, as RandomizedSearchCV's.
RANDOM = replace(
    SEARCH,
    search="random",
    spec=SpecSection(
        section=None,
        job_of=job_of,
        flavour=lambda settings: "random",
        needs_n_iter=True,
    ),
)
