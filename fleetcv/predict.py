"""Predictions of a run's fitted best estimator on new data (`invoke predict`).

Runs on the driver (the laptop), with no cluster: the refit left
`best_estimator.joblib` in the run directory (`fleetcv.dispatch.refit`), and
the run's spec copy says how its data was read (dtype overrides, the
target, group and weight columns to leave out), so a new file is read the
same way and handed to the model as the folds were.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetcv.errors import ConfigError
from fleetcv.rundir import journal as jn
from fleetcv.rundir import run as rd
from fleetcv.spec import load_search_spec
from fleetcv.spec.data import load_features

#: The default output file, in the run directory.
PREDICTIONS = "predictions.csv"


def _write_csv(table, target: Path) -> None:
    table.to_csv(target, index=False)


def _write_parquet(table, target: Path) -> None:
    table.to_parquet(target, index=False)


def _write_jsonl(table, target: Path) -> None:
    table.to_json(target, orient="records", lines=True)


def _write_npy(table, target: Path) -> None:
    """A real .npy that loads without pickle: the predictions, or one record per row.

    Predictions alone are a 1-D array of the model's dtype (strings as
    numpy strings, not objects); with probabilities, a structured array
    with one field per column (``prediction``, ``proba_<class>``).
    """
    import numpy as np

    columns = {name: _no_objects(table[name].to_numpy()) for name in table.columns}
    if list(columns) == ["prediction"]:
        arr = columns["prediction"]
    else:
        arr = np.empty(
            len(table), dtype=[(name, col.dtype) for name, col in columns.items()]
        )
        for name, col in columns.items():
            arr[name] = col
    np.save(target, arr, allow_pickle=False)


def _no_objects(col):
    """A column numpy saves without pickle: objects (string labels) as numpy strings."""
    return col.astype(str) if col.dtype.kind == "O" else col


#: What `predict` writes, by the extension of its `out`.
WRITERS = {
    ".csv": _write_csv,
    ".parquet": _write_parquet,
    ".npy": _write_npy,
    ".jsonl": _write_jsonl,
}


def output_writer(out: str | os.PathLike):
    """The writer of `out`'s format, checked before anything is computed.

    Raises
    ------
    ConfigError
        For an extension not in `WRITERS`, or a folder that does not exist.
    """
    target = Path(out)
    writer = WRITERS.get(target.suffix.lower())
    if writer is None:
        got = f"extension {target.suffix!r}" if target.suffix else "no extension"
        raise ConfigError(
            f"--out {out}: {got}, which is no format predict writes. Fix: end the "
            f"name with one of {', '.join(WRITERS)}"
        )
    if not target.parent.is_dir():
        raise ConfigError(
            f"--out {out}: the folder {target.parent} does not exist. Fix: create it, "
            "or write elsewhere"
        )
    return writer


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
        elif rd.status_of(meta) != "finished":
            why = f"it has not finished (status {rd.status_of(meta)})"
            fix = f"finish it: invoke search --resume {path}"
        else:
            why = "it made no refit (a curve, a run of fleetcv < 0.5, or a refit that failed)"
            fix = f"run the search with refit: true, or resume it to refit: invoke search --resume {path}"
        raise ConfigError(
            f"{path}: no fitted best estimator ({model.name}): {why}. Fix: {fix}"
        )
    # joblib (and scikit-learn, to unpickle the model) load only to predict.
    import joblib

    return joblib.load(model)


def _as_trained(X, model, x_kind: str | None):
    """New rows in the form the model was fitted on: its columns, or its texts."""
    if not hasattr(X, "columns"):
        return X
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        missing = [str(c) for c in names if c not in X.columns]
        if missing:
            raise ConfigError(
                f"--data: the model was trained on columns the file lacks: {missing}. "
                "Fix: give a table with those columns"
            )
        return X[list(names)]  # in training order; extra columns are left out
    if x_kind == "text":
        if X.shape[1] != 1:
            raise ConfigError(
                f"--data: the model reads texts, and the file has {X.shape[1]} columns "
                f"besides the labels ({[str(c) for c in X.columns]}). Fix: give one text column"
            )
        return X.iloc[:, 0].astype(str).to_numpy(dtype=object)
    return X


def predict(
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    proba: bool = False,
) -> tuple[Path, int]:
    """Write the run's best estimator's predictions on `data`, in the format `out` names.

    Parameters
    ----------
    run_dir : path
        A finished search run with a refit (best_estimator.joblib).
    data : path
        New rows: a .csv/.parquet table (the target, group and weight
        columns are left out when present), a .npy table or a .npz file.
    out : path, optional
        The file to write, by its extension: .csv, .parquet, .npy (a 1-D
        array, or with `proba` a structured one; loads without pickle) or
        .jsonl (one object per row); default `RUN_DIR/predictions.csv`.
    proba : bool
        Also write `predict_proba`'s columns (``proba_<class>``).

    Returns
    -------
    (Path, int)
        The file written and its number of rows.

    Raises
    ------
    ConfigError
        When `out` names no known format, the run has no model, the file
        cannot be read, or the model has no predict_proba and `proba` is
        asked.
    """
    path = Path(run_dir)
    target = Path(out) if out else path / PREDICTIONS
    write = output_writer(target)  # before the model loads: a bad name costs nothing
    import pandas as pd

    meta = rd.read_meta(path)
    spec = load_search_spec(
        path / jn.SPEC_COPY, n_iter=meta.get("n_iter"), base_dir=meta.get("spec_dir")
    )
    _use_the_runs_code(path, meta, spec)
    model = best_estimator(path)
    X = _as_trained(
        load_features(spec, data), model, (meta.get("data") or {}).get("X_kind")
    )
    if proba and not hasattr(model, "predict_proba"):
        raise ConfigError(
            f"--proba: the best estimator ({type(model).__name__}) has no "
            "predict_proba. Fix: drop --proba"
        )
    try:
        table = pd.DataFrame({"prediction": model.predict(X)})
        if proba:
            for cls, col in zip(model.classes_, model.predict_proba(X).T, strict=True):
                table[f"proba_{cls}"] = col
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"--data {data}: the model cannot predict these rows ({type(exc).__name__}: "
            f"{exc}). Fix: give rows with the columns (or features) the run was trained on"
        ) from exc
    write(table, target)
    return target, len(table)


def _use_the_runs_code(path: Path, meta: dict, spec) -> None:
    """Import the user's code as the run had it: its snapshot, not today's files.

    Raises
    ------
    ConfigError
        When the code changed since the run and its snapshot is gone.
    """
    from fleetcv.spec.code import DRIVER_CACHE
    from runtime import usercode

    digest = (meta.get("code") or {}).get("digest")
    if digest is None or digest == spec.code_digest:
        return
    snap = Path(DRIVER_CACHE).expanduser() / usercode.CODE_SUBDIR / digest
    if not (snap / usercode.SUMS).is_file():
        raise ConfigError(
            f"{path}: the spec's code: changed since the run (code digest "
            f"{spec.code_digest} != {digest}) and the run's snapshot {snap} is gone. "
            "Fix: restore the code the model was made with"
        )
    usercode.activate(snap)
