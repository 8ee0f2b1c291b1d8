"""Predictions of a run's fitted best estimator on new data (`invoke predict`).

Runs on the driver (the laptop), with no cluster: the refit left
`best_estimator.joblib` in the run directory (`runtime.dispatch.refit`), and
the run's spec copy says how its data was read (dtype overrides, the
target, group and weight columns to leave out), so a new file is read the
same way and handed to the model as the folds were.
"""

from __future__ import annotations

import os
from pathlib import Path

from runtime.errors import ConfigError
from runtime.rundir import journal as jn
from runtime.rundir import run as rd
from runtime.spec import load_search_spec
from runtime.spec.data import load_features

#: The default output file, in the run directory.
PREDICTIONS = "predictions.csv"


def best_estimator(run_dir: str | os.PathLike):
    """The fitted best estimator of a finished search run.

    Raises
    ------
    ConfigError
        When the run has no fitted model (refit: false, or not finished).
    """
    path = Path(run_dir)
    meta = rd.read_meta(path)
    refitted = meta.get("refitted")
    model = path / (refitted or {}).get("file", "best_estimator.joblib")
    if not refitted or not model.is_file():
        if meta.get("refit") is False:
            why, fix = (
                "its spec has refit: false",
                "run the search again with refit: true",
            )
        else:
            why = f"it has not finished (status {rd.status_of(meta)})"
            fix = f"finish it: invoke search --resume {path}"
        raise ConfigError(
            f"{path}: no fitted best estimator ({model.name}): {why}. Fix: {fix}"
        )
    # joblib (and scikit-learn, to unpickle the model) load only to predict.
    import joblib

    return joblib.load(model)


def predict(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    proba: bool = False,
) -> tuple[Path, int]:
    """Write the run's best estimator's predictions on `data` as a CSV file.

    Parameters
    ----------
    run_dir : path
        A finished search run with a refit (best_estimator.joblib).
    data : path
        New rows: a .csv/.parquet table (the target, group and weight
        columns are left out when present), a .npy table or a .npz file.
    out : path, optional
        The CSV to write; default `RUN_DIR/predictions.csv`.
    proba : bool
        Also write `predict_proba`'s columns (``proba_<class>``).

    Returns
    -------
    (Path, int)
        The file written and its number of rows.

    Raises
    ------
    ConfigError
        When the run has no model, the file cannot be read, or the model has
        no predict_proba and `proba` is asked.
    """
    import pandas as pd

    path = Path(run_dir)
    meta = rd.read_meta(path)
    spec = load_search_spec(path / jn.SPEC_COPY, base_dir=meta.get("spec_dir"))
    model = best_estimator(path)
    X = load_features(spec, data)
    table = pd.DataFrame({"prediction": model.predict(X)})
    if proba:
        if not hasattr(model, "predict_proba"):
            raise ConfigError(
                f"--proba: the best estimator ({type(model).__name__}) has no "
                "predict_proba. Fix: drop --proba"
            )
        for cls, col in zip(model.classes_, model.predict_proba(X).T, strict=True):
            table[f"proba_{cls}"] = col
    target = Path(out) if out else path / PREDICTIONS
    table.to_csv(target, index=False)
    return target, len(table)
