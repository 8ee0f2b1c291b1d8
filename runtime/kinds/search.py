"""The search kind: grid and randomized searches, results as scikit-learn's cv_results_.

Runs on the driver. A row is one parameter combination; its tasks evaluate
it on every fold. The results are `runtime.rundir.results.build_cv_results`
and the best candidate is GridSearchCV's `best_*` among the candidates
scored on every fold.
"""

from __future__ import annotations

from runtime.kinds.base import Kind
from runtime.rundir import results as rs

NAME = "search"


def search_job(candidates: list[dict], return_train_score: bool = True) -> dict:
    """The job description of a search (what its meta.json holds)."""
    return {
        "kind": NAME,
        "candidates": [dict(c) for c in candidates],
        "return_train_score": bool(return_train_score),
    }


def _candidates(job: dict) -> list[dict]:
    return job["candidates"]


def _task_args(job: dict, c: int) -> dict:
    return {"params": job["candidates"][c]}


def _train_scores(job: dict) -> bool:
    return job.get("return_train_score", True)


def _results(job: dict, n_folds: int, records) -> dict:
    return rs.build_cv_results(
        job["candidates"], n_folds, records, job.get("return_train_score", True)
    )


def _summary(results: dict) -> dict:
    idx, params, score = rs.best(results, complete_only=True)
    return {"best_index": idx, "best_params": params, "best_score": score}


def _report(results, n_tasks, n_done, status="running", extra=None, top_k=None):
    return rs.format_report(
        results,
        n_tasks,
        n_done,
        top_k=rs.TOP_K if top_k is None else top_k,
        status=status,
        extra=extra,
    )


def _postfix(results: dict) -> list[str]:
    _, _, score = rs.best(results)
    parts = [f"best={score:.5f}"] if score is not None else []
    failed = sum(results["n_failed_fits"])
    if failed:
        parts.append(f"failed={failed}")
    return parts


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
