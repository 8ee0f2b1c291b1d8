"""The per-task journal record: its fields, its statuses, made in one place.

Runs on the engines (the worker makes a record per task) and on the driver
(it adds where and when the task ran, or makes the record of a task that
never produced one). Every reader of journal.jsonl (results, reuse, timings,
plots) goes by the names here. Plain dicts, so a record is one flat JSON
object in the journal.

Fields:

- made by the worker: `candidate`, `fold`, `params` (plain data: an
  estimator value is its description, see runtime.build), `n_train`,
  `row` (the driver's tags of the task's row, e.g. a halving iteration),
  `test_score`, `train_score` (one metric), or `test_scores`,
  `train_scores` (several: metric name -> score), `fit_time`,
  `score_time`, `train_score_time` (when train scores are computed),
  `error` (traceback or None), `score_error` (a scorer that raised and
  scored error_score), `status`, `started`, `ended` (epoch seconds on the
  engine's host), `host`, `pid`, `rss`, `peak_rss`;
- added by the driver as a record arrives (`stamp`): `engine`, `message`
  (the ipyparallel message id; tasks of one message share it), `attempt`,
  `finished`;
- added by a reuse: `reused_from` (the run it was copied from).
"""

from __future__ import annotations

import time

#: The task ran and its fit succeeded.
OK = "ok"
#: The fit raised: scored with error_score, traceback in `error`.
FIT_FAILED = "fit_failed"
#: The task produced no score (its fold missing, its engine lost): a hole
#: that a resume fills.
ERROR = "error"
#: Statuses of a (candidate, fold) that has its scores.
FINISHED = (OK, FIT_FAILED)


def new_record(
    *, candidate, fold, params, n_train: int, row: dict | None = None
) -> dict:
    """The record a worker starts from, before the fit (status ok, no scores yet).

    `row` is what the driver tagged the task's row with (a halving
    iteration, an Optuna trial): kept as the record's `row`.
    """
    return {
        "candidate": candidate,
        "fold": fold,
        "params": params,
        "n_train": int(n_train),
        **({"row": row} if row is not None else {}),
        "test_score": None,
        "train_score": None,
        "fit_time": 0.0,
        "score_time": 0.0,
        "error": None,
        "status": OK,
    }


def error_record(*, candidate, fold, params, error: str, **where) -> dict:
    """The record of a task that produced no score (status error).

    Parameters
    ----------
    candidate, fold : int
        Which task.
    params : dict
        Its parameters (for the reader's sake: the task did not run them).
    error : str
        The traceback or the reason (e.g. "engine lost: ...").
    **where
        Where it failed, e.g. host and pid from the engine, or engine and
        message from the driver.
    """
    return {
        "candidate": candidate,
        "fold": fold,
        "params": params,
        "status": ERROR,
        "error": error,
        **where,
    }


def stamp(record: dict, *, engine, message: str, attempt: int) -> dict:
    """The record as the journal keeps it: with the engine, message and attempt."""
    return {
        **record,
        "engine": engine,
        "message": message,
        "attempt": attempt,
        "finished": time.time(),
    }


def is_finished(record: dict) -> bool:
    """Whether the record holds the scores of its (candidate, fold)."""
    return record.get("status") in FINISHED


def timed_out_record(
    *,
    candidate,
    fold,
    params,
    seconds: float,
    error_score: float,
    metrics: list[str] | None,
    return_train_score: bool,
    **where,
) -> dict:
    """The record of a fit stopped by the task timeout: a failed fit, scored error_score.

    Parameters
    ----------
    candidate, fold, params
        Which task.
    seconds : float
        The timeout it ran past.
    error_score : float
        Its score, as for a fit that raised.
    metrics : list of str or None
        The metric names of a multi-metric search; None for one metric.
    return_train_score : bool
        Whether train scores are recorded too.
    **where
        Where it ran (host, pid).
    """
    rec = {
        **new_record(candidate=candidate, fold=fold, params=params, n_train=0),
        "status": FIT_FAILED,
        "fit_time": float(seconds),
        "error": f"timed out after {seconds:g} s (task_timeout): the engine was "
        "stopped and replaced",
        **where,
    }
    # The shape of a failed fit's record from the worker (`_put_scores`).
    for which in ("test", "train") if return_train_score else ("test",):
        if metrics is None:
            rec[f"{which}_score"] = error_score
        else:
            rec[f"{which}_scores"] = dict.fromkeys(metrics, error_score)
    return rec
