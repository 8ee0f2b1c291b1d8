"""Functions executed on the engines: evaluate one (candidate, fold).

Runs inside an ipyparallel engine, possibly on another host. Every function
takes keyword arguments and returns a flat dict of plain types (for
`evaluate`, the record of `runtime.record` that the driver appends to
the journal). ipyparallel ships a function's code, and the engine runs it with
this module's globals (importing the module there). scikit-learn, joblib and
psutil are imported inside the functions: the driver imports this module to
send its functions, and the command line (`invoke --list`, `invoke report`)
must not pay scikit-learn's second of import time for that; on an engine they
are already loaded (the launcher imports them before it forks).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import traceback
import warnings
from typing import TYPE_CHECKING

from runtime import usercode
from runtime.build import build_scorers, materialize
from runtime.folds import head, slice_fit_params
from runtime.folds import subsample as subsample_fold
from runtime.record import FIT_FAILED, error_record, new_record

if TYPE_CHECKING:
    from collections.abc import Callable

WORKDIR_ENV = "FLEETCV_WORKDIR"
HOST_ENV = "FLEETCV_HOST"

#: The fold this engine used last, kept mapped: tasks go fold by fold, so the
#: next task usually needs the same one and skips the open/unpickle/mmap.
#: One entry only, so an engine never holds more than one fold's mapping.
_LAST_FOLD: dict = {}
#: This process's psutil handle, made once: tiny tasks pay for every call.
_SELF: dict = {}


def load_fold_cached(path: str):
    """joblib.load(path, mmap_mode="r"), reusing the last fold this process loaded."""
    import joblib

    stat = os.stat(path)
    key = (path, stat.st_ino, stat.st_mtime_ns)
    if _LAST_FOLD.get("key") != key:
        _LAST_FOLD.clear()
        _LAST_FOLD["data"] = joblib.load(path, mmap_mode="r")
        _LAST_FOLD["key"] = key
    return _LAST_FOLD["data"]


def engine_info() -> dict:
    """Describe the engine process this runs in: host name, pid, workdir."""
    return {
        "host": os.environ.get("FLEETCV_HOST") or socket.gethostname(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "workdir": os.environ.get("FLEETCV_WORKDIR", ""),
    }


def resolve_fold(fold_ref: str) -> str:
    """Resolve a fold's relative name against this engine's host workdir."""
    if os.path.isabs(fold_ref):
        return fold_ref
    workdir = os.environ.get("FLEETCV_WORKDIR") or os.path.expanduser(
        "~/.cache/fleetcv"
    )
    return os.path.join(os.path.expanduser(workdir), fold_ref)


def evaluate(
    *,
    fold_ref: str,
    estimator,
    params: dict,
    scoring=None,
    error_score: float | str = float("nan"),
    return_train_score: bool = True,
    train_size: int | None = None,
    subsample: dict | None = None,
    row: dict | None = None,
    candidate: int | None = None,
    fold: int | None = None,
    scorer: Callable | None = None,
) -> dict:
    """Fit and score one candidate on one fold, as sklearn's `_fit_and_score`.

    Parameters
    ----------
    fold_ref : str
        The fold file, relative to this host's workdir (or absolute).
    estimator : sklearn estimator
        Cloned here, never mutated.
    params : dict
        Set on the clone with `set_params`, estimator descriptions built
        first (`runtime.build.materialize`).
    scoring : str, list, dict or None
        As the spec writes it (`runtime.build`): one scorer, or
        several (multi-metric); None uses the estimator's `score`.
    error_score : float or "raise"
        The score recorded when `fit` (or a scorer) raises; "raise" re-raises.
    return_train_score : bool
        Also score on the training rows.
    train_size : int, optional
        Fit on the first `train_size` rows of the training fold (a view of
        the memmap where X's kind allows), for learning curves.
    subsample : dict, optional
        ``{fraction, random_state}``: a halving subsample of the fold's rows.
    row : dict, optional
        The row's tags (iteration, trial), echoed in the record.
    candidate, fold : int, optional
        Echoed back in the record.
    scorer : callable, optional
        `search_scorer(scoring, estimator)` made already (`evaluate_many`
        makes one per message, as GridSearchCV makes one per search); None
        makes it here.

    Returns
    -------
    dict
        candidate, fold, params, test_score, train_score (with several
        metrics: test_scores and train_scores, name -> score, and
        test_score/train_score None), fit_time, score_time, n_train, started
        and ended (epoch seconds on the engine's host), host, pid, rss,
        peak_rss, error (traceback or None), status ("ok" or "fit_failed").
    """
    from sklearn.base import clone

    started = time.time()
    path = fold_ref if os.path.isabs(fold_ref) else resolve_fold(fold_ref)
    # A missing or unreadable fold is an infrastructure problem: let it raise
    # so the driver records the task as errored (retried on resume), instead of
    # passing it off as a failed fit with error_score.
    rows = _task_rows(load_fold_cached(path), train_size, subsample)
    est = clone(estimator)
    est.set_params(**materialize(params, est))
    if scorer is None:
        scorer = search_scorer(scoring, estimator, error_score)
    record = new_record(
        candidate=candidate, fold=fold, params=params, n_train=len(rows[1]), row=row
    )
    _fit_and_score(record, est, scorer, rows, error_score, return_train_score)
    return _where_and_when(record, started)


def _task_rows(fold: tuple, train_size: int | None, subsample: dict | None) -> tuple:
    """The rows a task fits and scores: all, the first `train_size` (views) or a subsample."""
    if subsample is not None:
        fold = subsample_fold(fold, **subsample)
    if train_size is None:
        return fold
    X_train, y_train, X_test, y_test, fit_params = fold
    fit_params = slice_fit_params(fit_params, range(train_size), len(y_train))
    return head(X_train, train_size), y_train[:train_size], X_test, y_test, fit_params


#: The key of the data an engine publishes when a task starts (`announce_task`).
RUNNING_KEY = "fleetcv_running"


def announce_task(index: int) -> None:
    """Tell the driver that task `index` of this message starts, here (host, pid).

    Sent on the engine's IOPub channel (ipyparallel's `publish_data`): the
    driver times each task from it and knows which engine to stop when one
    runs past its timeout. Outside an engine (a direct call) it does nothing.
    """
    try:
        from ipyparallel.datapub import publish_data

        info = engine_info()
        publish_data({RUNNING_KEY: [index, info["host"], info["pid"]]})
    except Exception:  # noqa: BLE001 - no kernel here: nobody to tell
        pass


def search_scorer(scoring, estimator, error_score: float | str = "nan") -> Callable:
    """The scorer a search's tasks share: `scorer(est, X, y)` -> a float, or a dict of them.

    With several metrics, scikit-learn's multi-metric scorer (one `predict`
    for all of them), which returns a scorer's exception text in place of
    its score instead of raising; `_fit_and_score` turns that into
    error_score, as GridSearchCV does.
    """
    from sklearn.metrics import check_scoring

    built = build_scorers(scoring, estimator)
    if isinstance(built, dict):
        return check_scoring(estimator, scoring=built, raise_exc=error_score == "raise")
    return built


def _fit_and_score(record, est, scorer, fold, error_score, return_train_score):
    """Fit `est` on the fold's training rows and score it, into `record` (sklearn's timings)."""
    X_train, y_train, X_test, y_test, fit_params = fold
    start = time.perf_counter()
    try:
        est.fit(X_train, y_train, **fit_params)
    except Exception:
        if error_score == "raise":
            raise
        record["fit_time"] = time.perf_counter() - start
        record["status"] = FIT_FAILED
        record["error"] = traceback.format_exc()
        _put_scores(record, "test", scorer, float(error_score), error_score)
        if return_train_score:
            _put_scores(record, "train", scorer, float(error_score), error_score)
        return
    record["fit_time"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = _score(scorer, est, X_test, y_test, error_score, record)
    _put_scores(record, "test", scorer, scores, error_score)
    # sklearn's score_time covers the test score only; keep that meaning
    # so the figures compare, and time the train score apart.
    record["score_time"] = time.perf_counter() - start
    if return_train_score:
        start = time.perf_counter()
        scores = _score(scorer, est, X_train, y_train, error_score, record)
        _put_scores(record, "train", scorer, scores, error_score)
        record["train_score_time"] = time.perf_counter() - start


def _score(scorer, est, X, y, error_score, record):
    """scorer(est, X, y); a scorer that raises scores error_score (as sklearn's `_score`)."""
    try:
        return scorer(est, X, y)
    except Exception:
        if error_score == "raise":
            raise
        record["score_error"] = traceback.format_exc()
        return float(error_score)


def _put_scores(record, which: str, scorer, scores, error_score) -> None:
    """The scores into `record`: `<which>_score`, or `<which>_scores` by metric name."""
    if not hasattr(scorer, "_scorers"):  # one metric
        record[f"{which}_score"] = float(scores)
        return
    names = list(scorer._scorers)
    if not isinstance(scores, dict):  # a failed fit: every metric the same
        scores = dict.fromkeys(names, scores)
    out = {}
    for name in names:
        v = scores[name]
        if isinstance(v, str):
            # The multi-metric scorer's text for a metric that raised (it
            # raises itself under error_score="raise").
            record["score_error"] = v
            v = error_score
        out[name] = float(v)
    record[f"{which}_scores"] = out


def _where_and_when(record: dict, started: float) -> dict:
    """`record` with when the task ran, on which host and process, and its memory."""
    import psutil

    if "proc" not in _SELF:
        _SELF["proc"] = psutil.Process()
    rss = _SELF["proc"].memory_info().rss
    record.update(
        # Wall-clock times on the engine's host: when the task ran there.
        started=started,
        ended=time.time(),
        host=os.environ.get("FLEETCV_HOST") or socket.gethostname(),
        pid=os.getpid(),
        rss=rss,
        # ru_maxrss (KiB on Linux) is the kernel's high-water mark, which can
        # trail the current RSS by a page or two.
        peak_rss=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rss),
    )
    return record


#: Distinct warnings of a refit sent back to the driver, at most.
MAX_WARNINGS = 20


def use_run_code(code_ref: str | None) -> None:
    """Import the user's code from the run's snapshot (relative to the workdir); None: none.

    Raises
    ------
    FileNotFoundError
        When this host lacks the snapshot (as a missing fold: the task fails
        here, and is retried elsewhere or left for a resume).
    """
    path = resolve_fold(code_ref) if code_ref else None
    if path is not None and not os.path.isdir(path):
        raise FileNotFoundError(f"the run's code snapshot {path} is not on this host")
    usercode.activate(path)


def refit(
    *, data_ref: str, estimator, params: dict, code_ref: str | None = None
) -> dict:
    """Fit the best candidate on the whole data set (data.pkl), as GridSearchCV's refit.

    Parameters
    ----------
    data_ref : str
        The split directory's data.pkl, relative to this host's workdir.
    estimator : sklearn estimator
        Cloned here.
    params : dict
        The best candidate's parameters (descriptions built here).
    code_ref : str, optional
        The run's code snapshot, relative to this host's workdir.

    Returns
    -------
    dict
        ``estimator`` (fitted), ``refit_time`` (seconds of `fit`, scikit-learn's
        `refit_time_`), ``host``, ``pid`` and ``warnings`` (the distinct
        (category import path, message) pairs the fit warned).
    """
    import joblib
    from sklearn.base import clone

    use_run_code(code_ref)
    X, y, fit_params = joblib.load(resolve_fold(data_ref), mmap_mode="r")
    est = clone(estimator)
    est.set_params(**materialize(params, est))
    # The refit's warnings go back to the driver, which warns them again:
    # GridSearchCV's refit warns in the caller's process (a ConvergenceWarning,
    # a DataConversionWarning), so fleetcv's does too.
    with warnings.catch_warnings(record=True) as caught:
        start = time.perf_counter()
        est.fit(X, y, **fit_params)
        refit_time = time.perf_counter() - start
    info = engine_info()
    said = {
        (f"{w.category.__module__}.{w.category.__qualname__}", str(w.message))
        for w in caught
    }
    return {
        "estimator": est,
        "refit_time": refit_time,
        "host": info["host"],
        "pid": info["pid"],
        "warnings": sorted(said)[:MAX_WARNINGS],
    }


def warm_fold_cache(*, fold_refs: list[str]) -> dict:
    """Read every fold file once so the host's page cache holds them.

    Run on one engine per host before a search, as the original notebook
    did: the other engines of the host then map the data without disk reads.
    """
    start = time.perf_counter()
    nbytes = 0
    for ref in fold_refs:
        path = resolve_fold(ref)
        base = os.path.dirname(path)
        for name in os.listdir(base):
            if name.startswith(os.path.basename(path)):
                with open(os.path.join(base, name), "rb") as f:
                    while chunk := f.read(1 << 22):
                        nbytes += len(chunk)
    return {
        "host": os.environ.get("FLEETCV_HOST") or socket.gethostname(),
        "bytes": nbytes,
        "seconds": time.perf_counter() - start,
    }


def pip_install(*, packages: list[str]) -> dict:
    """pip-install into this engine's own environment (one engine per host)."""
    return _pip_install(list(packages))


def _pip_install(args: list[str], cwd: str | None = None) -> dict:
    """`pip install ARGS` with this engine's Python: its exit status and output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    return {"returncode": proc.returncode, "output": proc.stdout + proc.stderr}


#: The list of what a requirements wheelhouse installs (fleetcv.dispatch.requirements).
REQUIREMENTS_FILE = "requirements.txt"
#: fleetcv's own pins, which the requirements may not move.
CONSTRAINTS_FILE = "constraints.txt"


def install_requirements(*, reqs_ref: str) -> dict:
    """Install a run's requirements offline from their wheelhouse (one engine per host).

    Every run asks pip (offline, quick when all is there): a marker could not
    tell that another run installed other versions since. fleetcv's own pins
    constrain pip, so a requirement never moves numpy or scikit-learn.

    Returns
    -------
    dict
        ``returncode``, ``output`` (pip's) and ``installed`` (pip installed
        something).
    """
    wheels = resolve_fold(reqs_ref)
    out = _pip_install(
        ["--no-color", "--no-index", "--find-links", wheels, "-r", REQUIREMENTS_FILE]
        + ["-c", CONSTRAINTS_FILE],
        # A wheel's line is its file name: relative to the wheelhouse.
        cwd=wheels,
    )
    return {**out, "installed": "Successfully installed" in out["output"]}


def evaluate_many(*, tasks: list[dict], **common) -> list[dict]:
    """`evaluate` for several (candidate, fold) pairs sent in one message.

    Parameters
    ----------
    tasks : list of dict
        Per-task arguments of `evaluate` (fold_ref, params, candidate, fold,
        and train_size for learning curves).
    **common
        Arguments shared by all of them (estimator, scoring, error_score,
        return_train_score).

    Returns
    -------
    list of dict
        One `evaluate` record per task, in order. A task that raises (its
        fold missing on this host, say) gets a record with status "error"
        and the traceback, and the message goes on: its other tasks, maybe
        of other folds, keep their results. With error_score="raise" the
        error propagates, as from `evaluate`.
    """
    # Before anything imports the user's modules by name (a scorer's path).
    use_run_code(common.pop("code_ref", None))
    # Under a task timeout the driver must see which task runs where.
    announce = common.pop("announce", False)
    # Once per message, as GridSearchCV makes one per search (about 0.1 ms,
    # a thirtieth of a tiny task).
    scorer = search_scorer(
        common.get("scoring"), common["estimator"], common.get("error_score", "nan")
    )
    records = []
    for i, t in enumerate(tasks):
        if announce:
            announce_task(i)
        try:
            records.append(evaluate(**common, **t, scorer=scorer))
        except Exception:
            if common.get("error_score") == "raise":
                raise
            info = engine_info()
            records.append(
                error_record(
                    candidate=t.get("candidate"),
                    fold=t.get("fold"),
                    params=t.get("params"),
                    error=traceback.format_exc(),
                    host=info["host"],
                    pid=info["pid"],
                )
            )
    return records
