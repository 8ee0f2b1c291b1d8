"""The refit: the best candidate fitted on all the data, as GridSearchCV's `refit=True`.

Runs on the driver, at the end of a finished search (`lifecycle.execute`).
One engine fits the best candidate on the split directory's data.pkl (the
whole data set, memory-mapped on its host) and sends the fitted estimator
back; the driver writes it as `best_estimator.joblib` in the run directory
and records where and how long (`refit_time`, scikit-learn's `refit_time_`)
in meta.json, so `invoke report` keeps it and a resumed run refits once, at
its end, and never again.
"""

from __future__ import annotations

import os
import pickle
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from fleetcv.errors import EnginesLost, SearchError
from fleetcv.kinds.search import best_of
from fleetcv.rundir import run as rd
from runtime.worker import refit as refit_on_engine

#: The fitted best estimator, in the run directory.
BEST_ESTIMATOR = "best_estimator.joblib"
#: How often the wait looks at the refit task and at the engines.
POLL_SECONDS = 0.1
#: An empty cluster for this long means the refit has no engine left.
NO_ENGINES_TIMEOUT = 15.0


def refit_best(client, plan, job, log: Callable[[str], None] = print) -> dict | None:
    """Fit the best candidate of a finished search on all the data, once.

    Parameters
    ----------
    client : ipyparallel.Client
        The cluster.
    plan : fleetcv.dispatch.lifecycle.Plan
        The run (its spec builds the estimator, its split holds data.pkl).
    job : fleetcv.dispatch.job.SearchJob
        The search, ended; nothing is done unless it finished and its job
        asks for a refit.
    log : callable
        Where the one line about the refit goes.

    Returns
    -------
    dict or None
        What meta.json's `refitted` holds (best_index, refit_time, host,
        file), or None when there was nothing to refit.

    Raises
    ------
    SearchError
        When the refit's fit raised.
    EnginesLost
        When every engine went away during it.
    """
    if not job.job.get("refit") or job.status != "finished":
        return None
    # None when every fit failed (best_of): nothing to refit.
    idx, params, _ = best_of(job.job, job.results_)
    done = job.job.get("refitted")
    path = plan.run_dir / BEST_ESTIMATOR
    if idx is None or (done and done.get("best_index") == idx and path.is_file()):
        return done
    ar = client.load_balanced_view().apply_async(
        refit_on_engine,
        data_ref=plan.split.data_relative(),
        estimator=plan.spec.estimator.build(),
        params=params,
        code_ref=(job.job.get("code") or {}).get("ref"),
    )
    out = _wait(client, ar, idx)
    _warn_again(out.get("warnings", ()))
    _dump(out["estimator"], path)
    info = {
        "best_index": idx,
        "refit_time": out["refit_time"],
        "host": out["host"],
        "file": BEST_ESTIMATOR,
    }
    rd.update_meta(plan.run_dir, refitted=info)
    job.job["refitted"] = info
    job.finalize()
    log(
        f"refit: candidate {idx} on all the data in {out['refit_time']:.2f} s on "
        f"{out['host']}, wrote {path}"
    )
    return info


#: A terminal colour code, as IPython puts in a remote traceback.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _wait(client, ar, idx: int) -> dict:
    """The refit's result; stops when its fit raised or no engine is left."""
    empty_since = None
    while not ar.ready():
        if client.ids:
            empty_since = None
        elif empty_since is None:
            empty_since = time.monotonic()
        elif time.monotonic() - empty_since > NO_ENGINES_TIMEOUT:
            raise EnginesLost(
                "the refit lost its engine and no engine is left. Fix: start the "
                "cluster (invoke cluster.start) and resume the run to refit"
            )
        time.sleep(POLL_SECONDS)
    try:
        return ar.get(0)
    except Exception as exc:  # noqa: BLE001 - a remote error becomes one message
        tb = getattr(exc, "traceback", None) or f"{type(exc).__name__}: {exc}"
        # The engine's IPython colours its tracebacks: plain text in a message.
        tb = ANSI_ESCAPE.sub("", tb)
        raise SearchError(
            f"the refit of the best candidate ({idx}) on all the data failed:\n{tb}\n"
            "Fix: the fit on all rows raised where the fits on the folds did not; "
            "the search's results are written (set refit: false to skip the refit)"
        ) from exc


def _warn_again(said) -> None:
    """The refit's warnings on the engine, warned here (their own category when it imports)."""
    from runtime.build import import_path

    for category, message in said:
        try:
            cls = import_path(category)
        except Exception:  # noqa: BLE001 - a category the driver lacks: a UserWarning
            cls = UserWarning
        if not (isinstance(cls, type) and issubclass(cls, Warning)):
            cls = UserWarning
        warnings.warn(message, cls, stacklevel=3)


def _dump(estimator, path: Path) -> None:
    """joblib.dump to a temporary name, then rename: never a half-written model."""
    import joblib

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        joblib.dump(estimator, tmp)
    except (pickle.PicklingError, AttributeError, TypeError):
        # A lambda or a notebook's class inside: cloudpickle writes it by
        # value, as a plain pickle that joblib.load reads all the same.
        import cloudpickle

        with open(tmp, "wb") as f:
            cloudpickle.dump(estimator, f)
    os.replace(tmp, path)
