"""Loading a search spec's data set: a loader function, or a .npy/.npz/.csv file.

Runs on the driver (the laptop); the engines receive the arrays, never the
files. `load_data` returns X and y checked for what the search needs (finite
numbers, one target per row, enough samples for the folds, two classes for a
classifier), so a bad data set fails before any engine is busy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ConfigError
from runtime.spec.common import err, import_object
from runtime.spec.search import DataSpec, SearchSpec


def load_data(spec: SearchSpec) -> tuple[np.ndarray, np.ndarray]:
    """Load and check the spec's data set.

    Parameters
    ----------
    spec : SearchSpec
        The validated spec; its ``data`` says where the data comes from, its
        estimator and cv what the data must be fit for.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y : ndarray of shape (n_samples,)

    Raises
    ------
    ConfigError
        If the data cannot be read, or is unfit for the search (NaN/inf,
        non-numeric columns, X/y length mismatch, fewer samples than folds,
        a single class for a classifier).
    """
    where, d = spec.path, spec.data
    if d.loader:
        try:
            out = import_object(d.loader)(**d.loader_params)
        except Exception as exc:  # noqa: BLE001 - loader errors are reported, not crashed on
            raise err(
                where,
                "data.loader",
                f"{d.loader} failed: {exc}",
                "check the loader and its loader_params",
            ) from exc
        if isinstance(out, tuple) and len(out) == 2:
            X, y = out
        elif hasattr(out, "data") and hasattr(out, "target"):
            X, y = out.data, out.target
        else:
            raise err(
                where,
                "data.loader",
                f"{d.loader} returned {type(out).__name__}",
                "use a loader that returns (X, y) or a Bunch with data and target",
            )
        key = "data.loader"
    else:
        X, y = _read_data_file(where, d)
        key = "data.path"
    return _check_xy(where, key, X, y, spec)


def _read_data_file(where: str, d: DataSpec) -> tuple[Any, Any]:
    p = Path(d.path)
    key = "data.path"
    if not p.is_file():
        raise err(
            where,
            key,
            f"{p} does not exist",
            "check the path (relative paths are read from the spec's folder)",
        )
    try:
        if p.suffix == ".npz":
            return _read_npz(where, key, p, d.target)
        if p.suffix == ".npy":
            arr, header = np.load(p, allow_pickle=False), None
        else:
            arr, header = _read_csv(p)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise err(
            where,
            key,
            f"cannot read {p}: {exc}",
            "check that the file is a valid .npy/.npz/.csv",
        ) from exc
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise err(
            where,
            key,
            f"{p} has shape {arr.shape}, expected a 2-D table with features and a target column",
            "save features and target as columns of one table",
        )
    col = _target_column(where, d.target, header, arr.shape[1], p)
    y = arr[:, col]
    X = np.delete(arr, col, axis=1)
    return X, y


def _read_npz(where: str, key: str, p: Path, target: Any) -> tuple[Any, Any]:
    with np.load(p, allow_pickle=False) as z:
        names = list(z.keys())
        xk = "X" if "X" in names else None
        yk = target if target in names else ("y" if "y" in names else None)
        if xk is None or yk is None:
            raise err(
                where,
                key,
                f"{p} holds arrays {names}, expected X and y",
                "save with np.savez(path, X=X, y=y), or set data.target to the name of the target array",
            )
        return z[xk], z[yk]


def _read_csv(p: Path) -> tuple[np.ndarray, list[str] | None]:
    """The table of a CSV file, and its header if its first line is one."""
    with open(p) as f:
        first = f.readline()
    cells = [c.strip() for c in first.split(",")]
    has_header = any(not _is_number(c) for c in cells if c)
    arr = np.genfromtxt(
        p, delimiter=",", skip_header=1 if has_header else 0, dtype=float
    )
    if arr.ndim == 1:
        arr = arr.reshape(-1, len(cells))
    return arr, (cells if has_header else None)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _target_column(
    where: str, target: Any, header: list[str] | None, ncols: int, p: Path
) -> int:
    if target is None:
        return ncols - 1
    if isinstance(target, int) and not isinstance(target, bool):
        if -ncols <= target < ncols:
            return target % ncols
        raise err(
            where,
            "data.target",
            f"column {target} is out of range for {ncols} columns in {p}",
            f"use an index in [0, {ncols - 1}]",
        )
    if header is not None and target in header:
        return header.index(target)
    raise err(
        where,
        "data.target",
        f"no column named {target!r} in {p}",
        f"use one of {header}"
        if header
        else "this file has no header: give the column index",
    )


def _check_xy(
    where: str, key: str, X: Any, y: Any, spec: SearchSpec
) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.ascontiguousarray(X, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise err(
            where,
            key,
            f"X has non-numeric values ({exc})",
            "encode categorical columns as numbers before the search",
        ) from exc
    y = np.asarray(y)
    if X.ndim != 2:
        raise err(
            where,
            key,
            f"X has shape {X.shape}, expected (n_samples, n_features)",
            "give a 2-D feature table",
        )
    if y.ndim != 1 or len(y) != len(X):
        raise err(
            where,
            key,
            f"X has {len(X)} rows but y has shape {y.shape}",
            "give one target value per row of X",
        )
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).sum())
        raise err(
            where,
            key,
            f"X holds {bad} NaN or infinite values",
            "impute or drop them before the search",
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise err(
            where,
            key,
            "y holds NaN or infinite values",
            "drop the rows without a target",
        )
    est = spec.estimator.build()
    # Deferred: importing runtime.spec (fabfile.py does) must not import sklearn.
    from sklearn.base import is_classifier

    if is_classifier(est):
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if len(np.unique(y)) < 2:
            raise err(
                where,
                key,
                f"y has a single class ({np.unique(y)[0]!r})",
                "a classifier needs at least two classes in the target",
            )
    n_test = spec.cv.test_size if spec.cv.kind == "shuffle" else None
    if len(X) < spec.cv.n_splits or (isinstance(n_test, int) and n_test >= len(X)):
        raise err(
            where,
            "cv.n_splits",
            f"{len(X)} samples are too few for {spec.cv.n_splits} folds",
            "use fewer folds or more data",
        )
    return X, y
