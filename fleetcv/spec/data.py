"""Loading a search spec's data set: a loader, or a table / array / sparse file.

Runs on the driver (the laptop); the engines receive the folds, never the
files. `load_dataset` returns X, y, the group labels and the fit parameters,
checked for what the search needs (one target per row, enough samples for
the folds, two classes for a classifier, an estimator that takes what X
holds), so a bad data set fails before any engine is busy.

X keeps what it is: a pandas DataFrame (column names, dtypes, categoricals,
strings and NaN unchanged), a scipy.sparse matrix (never densified), a
sequence of strings (raw text for a vectorizer), or a numeric array (made
float64 and C-contiguous, the layout every engine maps without a copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fleetcv.errors import ConfigError
from fleetcv.spec.common import err, import_object
from fleetcv.spec.search import SearchSpec, needs_groups
from fleetcv.spec.source import ArrayRef, DataSpec
from runtime.build import build, is_estimator_description
from runtime.folds import n_samples, x_kind


@dataclass
class Dataset:
    """A search's data: features, target, group labels, fit parameters."""

    X: Any
    y: np.ndarray
    groups: np.ndarray | None = None
    fit_params: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        """Rows."""
        return n_samples(self.X)

    def describe(self) -> str:
        """What X is, for the log: ``1797 x 64``, ``a frame of 891 x 7``..."""
        kind = x_kind(self.X)
        if kind == "text":
            return f"{self.n_samples} texts"
        n, m = self.X.shape
        if kind == "sparse":
            return f"a sparse {n} x {m} ({self.X.nnz} stored values)"
        return f"a frame of {n} x {m}" if kind == "frame" else f"{n} x {m}"


def load_data(spec: SearchSpec) -> tuple[Any, np.ndarray]:
    """(X, y) of the spec's data set, checked (see `load_dataset`)."""
    d = load_dataset(spec)
    return d.X, d.y


def load_dataset(spec: SearchSpec) -> Dataset:
    """Load and check the spec's data set, group labels and fit parameters.

    Parameters
    ----------
    spec : SearchSpec
        The validated spec; its ``data`` says where the data comes from, its
        estimator and cv what the data must be fit for.

    Returns
    -------
    Dataset

    Raises
    ------
    ConfigError
        If the data cannot be read, or is unfit for the search (X/y length
        mismatch, a missing or wrong-length group or weight column, fewer
        samples than folds, a single class for a classifier, sparse data or
        NaN for an estimator that refuses them).
    """
    where, d = spec.path, spec.data
    if d.loader:
        X, y, groups = _from_loader(where, d)
        key = "data.loader"
    else:
        X, y = _read_data_file(where, d)
        groups = None
        key = "data.path"
    X, columns = _pop_columns(where, X, d, spec.fit_params)
    if d.groups is not None:
        groups = _array(where, "data.groups", d.groups, columns)
    fit_params = {
        name: _array(where, f"fit_params.{name}", v, columns)
        if isinstance(v, ArrayRef)
        else v
        for name, v in spec.fit_params.items()
    }
    X, y = _check_xy(where, key, X, y, spec)
    _check_lengths(where, len(y), groups, fit_params, d)
    if groups is None and spec.cv.cls is not None and needs_groups(spec.cv.splitter()):
        raise err(
            where,
            "data.loader",
            f"{spec.cv.cls} splits by groups, and {d.loader} returned none",
            "return (X, y, groups) or a Bunch with groups from the loader, or set data.groups",
        )
    _check_folds(where, spec, X, y, groups)
    return Dataset(X, y, groups, fit_params)


def load_features(spec: SearchSpec, path: str | Path) -> Any:
    """The features of a new data file, read as the spec reads its data (for predictions).

    A .csv/.parquet table gets the spec's `dtype` overrides, and loses the
    target, group and fit-parameter columns (by name) when it has them; a
    .npy table or a .npz file gives its array as float64, as the folds had
    it (a sparse matrix saved by `scipy.sparse.save_npz`, or the array X).

    Raises
    ------
    ConfigError
        Naming ``--data``, when the file is missing or unreadable.
    """
    p = Path(path)
    where = "--data"
    if not p.is_file():
        raise ConfigError(f"--data: {p} does not exist. Fix: check the path")
    try:
        if p.suffix in (".csv", ".parquet"):
            d = spec.data
            frame, _ = _read_table(
                where, DataSpec(path=str(p), dtype=d.dtype), p, features_only=True
            )
            drop = [d.target] + [
                r.column
                for r in (d.groups, *spec.fit_params.values())
                if isinstance(r, ArrayRef)
            ]
            return frame.drop(columns=[c for c in drop if c in frame.columns])
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if "X" in z:
                    return np.ascontiguousarray(z["X"], dtype=np.float64)
            import scipy.sparse

            return scipy.sparse.load_npz(p)
        if p.suffix == ".npy":
            return np.ascontiguousarray(
                np.load(p, allow_pickle=False), dtype=np.float64
            )
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"--data: cannot read {p}: {exc}. Fix: give a valid {p.suffix} file"
        ) from exc
    raise ConfigError(
        f"--data: unsupported file type {p.suffix!r} ({p}). Fix: use a .csv, .parquet, .npy or .npz file"
    )


def _from_loader(where: str, d: DataSpec) -> tuple[Any, Any, Any]:
    try:
        out = import_object(d.loader)(**d.loader_params)
    except Exception as exc:  # noqa: BLE001 - loader errors are reported, not crashed on
        raise err(
            where,
            "data.loader",
            f"{d.loader} failed: {exc}",
            "check the loader and its loader_params",
        ) from exc
    if isinstance(out, tuple) and len(out) in (2, 3):
        return (*out, None)[:3]
    if hasattr(out, "data") and hasattr(out, "target"):
        return out.data, out.target, getattr(out, "groups", None)
    raise err(
        where,
        "data.loader",
        f"{d.loader} returned {type(out).__name__}",
        "use a loader that returns (X, y), (X, y, groups) or a Bunch with data and target",
    )


def _pop_columns(where: str, X, d: DataSpec, fit_params: dict) -> tuple[Any, dict]:
    """X without the columns that are group labels or fit parameters, and those columns."""
    refs = [("data.groups", d.groups)] + [
        (f"fit_params.{n}", v) for n, v in fit_params.items() if isinstance(v, ArrayRef)
    ]
    wanted = {(k, r.column) for k, r in refs if r is not None and r.column is not None}
    if not wanted:
        return X, {}
    if not hasattr(X, "columns"):
        key, col = sorted(wanted, key=str)[0]
        raise err(
            where,
            key,
            f"column {col!r} asked for, but X is not a table with named columns",
            "read a .csv/.parquet file, return a DataFrame from the loader, or give {path: FILE}",
        )
    columns = {}
    for key, col in sorted(wanted, key=str):
        if col not in X.columns:
            raise err(
                where,
                key,
                f"no column named {col!r} in the data",
                f"use one of {[str(c) for c in X.columns]}",
            )
        columns[col] = X[col].to_numpy()
    return X.drop(columns=list(columns)), columns


def _array(where: str, key: str, ref: ArrayRef, columns: dict) -> np.ndarray:
    """A per-sample array: a popped column, or read from its file."""
    if ref.column is not None:
        return columns[ref.column]
    p = Path(ref.path)
    if not p.is_file():
        raise err(
            where,
            f"{key}.path",
            f"{p} does not exist",
            "check the path (relative paths are read from the spec's folder)",
        )
    try:
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            import pandas as pd

            arr = pd.read_csv(p, header=None).to_numpy()
            arr = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr
    except (OSError, ValueError) as exc:
        raise err(
            where,
            f"{key}.path",
            f"cannot read {p}: {exc}",
            "give a .npy array or a one-column .csv",
        ) from exc
    if arr.ndim != 1:
        raise err(
            where,
            f"{key}.path",
            f"{p} has shape {arr.shape}, expected one value per row",
            "save a 1-D array",
        )
    return arr


def _check_lengths(where: str, n: int, groups, fit_params: dict, d: DataSpec) -> None:
    named = [("data.groups", groups)] + [
        (f"fit_params.{k}", v)
        for k, v in fit_params.items()
        if isinstance(v, np.ndarray)
    ]
    for key, arr in named:
        if arr is not None and len(arr) != n:
            raise err(
                where,
                key,
                f"has {len(arr)} values for {n} rows of X",
                "give one value per row of the data",
            )


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
        if p.suffix in (".csv", ".parquet"):
            return _read_table(where, d, p)
        if p.suffix == ".npz":
            return _read_npz(where, key, p, d)
        arr = np.load(p, allow_pickle=False)
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise err(
            where,
            key,
            f"cannot read {p}: {exc}",
            f"check that the file is a valid {p.suffix} file",
        ) from exc
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise err(
            where,
            key,
            f"{p} has shape {arr.shape}, expected a 2-D table with features and a target column",
            "save features and target as columns of one table",
        )
    col = _target_column(where, d.target, None, arr.shape[1], p)
    y = arr[:, col]
    X = np.delete(arr, col, axis=1)
    return X, y


def _read_table(
    where: str, d: DataSpec, p: Path, features_only: bool = False
) -> tuple[Any, Any]:
    """A .csv or .parquet table as a DataFrame; the target column taken out of it.

    With `features_only`, the whole table and no target: the features of
    new rows to predict.
    """
    # pandas loads only for the specs that read a table.
    import pandas as pd

    if p.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401 - pandas reads parquet through it
        except ImportError as exc:
            raise err(
                where,
                "data.path",
                f"{p} is a parquet file and pyarrow is not installed",
                "pip install pyarrow (or save the table as .csv)",
            ) from exc
        frame = pd.read_parquet(p)
        for col, dtype in d.dtype.items():
            if col in frame.columns:  # a missing one is reported below
                frame[col] = frame[col].astype(dtype)
    else:
        with open(p) as f:
            first = f.readline()
        cells = [c.strip() for c in first.split(",")]
        has_header = any(not _is_number(c) for c in cells if c)
        frame = pd.read_csv(p, header=0 if has_header else None, dtype=d.dtype or None)
    if features_only:
        return frame, None
    missing = sorted(set(d.dtype) - set(map(str, frame.columns)))
    if missing:
        raise err(
            where,
            f"data.dtype.{missing[0]}",
            f"no column named {missing[0]!r} in {p}",
            f"use one of {[str(c) for c in frame.columns]}",
        )
    if frame.shape[1] < 2 and d.target_path is None:
        raise err(
            where,
            "data.path",
            f"{p} has {frame.shape[1]} column, expected features and a target column",
            "save features and target as columns of one table",
        )
    if d.target_path is not None:
        return frame, _read_target(where, d)
    names = [str(c) for c in frame.columns]
    col = _target_column(
        where,
        d.target,
        names if isinstance(frame.columns[0], str) else None,
        frame.shape[1],
        p,
    )
    target = frame.columns[col]
    return frame.drop(columns=[target]), frame[target].to_numpy()


def _read_npz(where: str, key: str, p: Path, d: DataSpec) -> tuple[Any, Any]:
    """Arrays X and y (np.savez), or a sparse matrix (scipy.sparse.save_npz) and target_path."""
    with np.load(p, allow_pickle=False) as z:
        names = list(z.keys())
        if not {"format", "indptr", "indices", "data", "shape"} <= set(names):
            xk = "X" if "X" in names else None
            yk = d.target if d.target in names else ("y" if "y" in names else None)
            if xk is None or yk is None:
                raise err(
                    where,
                    key,
                    f"{p} holds arrays {names}, expected X and y",
                    "save with np.savez(path, X=X, y=y), or set data.target to the name of the target array",
                )
            return z[xk], z[yk]
    if d.target_path is None:
        raise err(
            where,
            "data.target_path",
            f"{p} is a sparse matrix and holds no target",
            "give the target's file: data: {path: X.npz, target_path: y.npy}",
        )
    import scipy.sparse

    return scipy.sparse.load_npz(p), _read_target(where, d)


def _read_target(where: str, d: DataSpec) -> np.ndarray:
    return _array(where, "data.target_path", ArrayRef(path=d.target_path), {})


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
) -> tuple[Any, np.ndarray]:
    X = _normalized_x(where, key, X)
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    n = n_samples(X)
    if y.ndim != 1 or len(y) != n:
        raise err(
            where,
            key,
            f"X has {n} rows but y has shape {y.shape}",
            "give one target value per row of X",
        )
    missing = (
        ~np.isfinite(y)
        if y.dtype.kind == "f"
        else _is_missing(y)
        if y.dtype.kind == "O"
        else None
    )
    if missing is not None and missing.any():
        raise err(
            where,
            key,
            f"y holds {int(missing.sum())} missing (NaN, None or infinite) values",
            "drop the rows without a target",
        )
    est = spec.estimator.build()
    # Deferred: importing fleetcv.spec (fabfile.py does) must not import sklearn.
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
    check_inputs(where, X, _first_consumers(spec))
    return X, y


def _is_missing(y: np.ndarray) -> np.ndarray:
    """Which entries of an object array are None or NaN (a string target's gaps)."""
    return np.array(
        [v is None or (isinstance(v, float) and v != v) for v in y], dtype=bool
    )


def _first_consumers(spec: SearchSpec) -> list:
    """The estimators the candidates can be: the spec's, with each choice of estimator set."""
    base = spec.estimator.build()
    out, seen = [base], set()
    for grid in spec.params:
        for name, values in grid.items():
            for v in values if isinstance(values, list) else []:
                key = (name, repr(v))
                if is_estimator_description(v) and key not in seen:
                    seen.add(key)
                    est = spec.estimator.build()
                    out.append(est.set_params(**{name: build(v)}))
    return out


def _normalized_x(where: str, key: str, X: Any) -> Any:
    """X as the folds keep it: frames, CSR/CSC and text as they are, numbers float64 C-contiguous."""
    if hasattr(X, "iloc") and not hasattr(X, "columns"):
        X = X.to_numpy()  # a Series: one column, e.g. texts
    kind = x_kind(X)
    if kind == "frame":
        dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        if dup:
            raise err(
                where,
                key,
                f"X has duplicate column names {dup}",
                "give every column its own name",
            )
        return X
    if kind == "sparse":
        if len(X.shape) != 2:
            raise err(
                where,
                key,
                f"X has shape {X.shape}, expected (n_samples, n_features)",
                "give a 2-D feature table",
            )
        # Folds take rows: CSR (or CSC) can, COO/DOK/LIL as CSR.
        return X if X.format in ("csr", "csc") else X.tocsr()
    try:
        arr = np.asarray(X)
    except ValueError as exc:
        raise err(
            where,
            key,
            f"X cannot be read as a table ({exc})",
            "give rows of equal length",
        ) from exc
    if arr.dtype.kind in "biufc":
        if arr.ndim != 2:
            raise err(
                where,
                key,
                f"X has shape {arr.shape}, expected (n_samples, n_features)",
                "give a 2-D feature table",
            )
        return np.ascontiguousarray(arr, dtype=np.float64)
    # Raw text: a sequence of strings, for a vectorizer as the first step.
    if arr.ndim != 1 or not all(isinstance(t, str) for t in X):
        raise err(
            where,
            key,
            "X is neither numbers, a DataFrame, a sparse matrix nor a sequence of strings",
            "return a numeric array, a pandas DataFrame, a scipy.sparse matrix, or a list of texts",
        )
    return np.asarray(list(X), dtype=object)


def check_inputs(where: str, X: Any, estimators: list) -> None:
    """Refuse sparse X or NaN when every estimator the candidates can be would refuse it.

    scikit-learn's own check would fail every fit (`check_array` with
    `accept_sparse=False`, `ensure_all_finite=True`); the first estimator
    that sees X (through Pipelines) says so beforehand by its tags. Steps that
    route columns (ColumnTransformer, FeatureUnion) are not judged: their
    parts are. Where only some choices refuse, their fits fail and are
    recorded, as in scikit-learn.
    """
    from sklearn.utils import get_tags

    kind = x_kind(X)
    n_nan = _count_nan(X)
    problems = []
    for est in estimators:
        name, step = _first_consumer(est)
        if step is None:
            return
        tags = get_tags(step).input_tags
        label = (
            f"step {name!r} ({type(step).__name__})" if name else type(step).__name__
        )
        if kind == "sparse" and not tags.sparse:
            problems.append(("sparse", label))
        elif n_nan and not tags.allow_nan:
            problems.append(("nan", label))
        else:
            return
    what, label = problems[0]
    if what == "sparse":
        raise err(
            where,
            "estimator",
            f"X is a sparse matrix and {label} requires dense input (scikit-learn would fail every fit)",
            "use a step that takes sparse input first (e.g. sklearn.feature_extraction.text.TfidfTransformer, "
            "StandardScaler with with_mean: false, TruncatedSVD), or an estimator that takes it",
        )
    raise err(
        where,
        "estimator",
        f"X holds {n_nan} NaN values and {label} does not accept NaN (scikit-learn would fail every fit)",
        "impute them (e.g. a sklearn.impute.SimpleImputer step first), or use an estimator "
        "that takes NaN such as sklearn.ensemble.HistGradientBoostingClassifier",
    )


def _first_consumer(est) -> tuple[str | None, Any]:
    """The first estimator that sees X as it is: through Pipelines, not into routers."""
    name = None
    while hasattr(est, "steps"):
        steps = [(n, s) for n, s in est.steps if s not in (None, "passthrough")]
        if not steps:
            return None, None
        name, est = steps[0]
    if hasattr(est, "transformers") or hasattr(est, "transformer_list"):
        return None, None
    return name, est


def _count_nan(X) -> int:
    kind = x_kind(X)
    if kind == "dense":
        return int(np.isnan(X).sum())
    if kind == "sparse":
        return int(np.isnan(X.data).sum()) if X.dtype.kind == "f" else 0
    if kind == "frame":
        return int(X.isna().to_numpy().sum())
    return 0


def _check_folds(where: str, spec: SearchSpec, X, y, groups) -> None:
    """Enough samples (and groups, and members per class) for the folds.

    The splitter draws its folds here once, as the fold writer will: what it
    refuses (one group for LeaveOneGroupOut, fewer members of a class than
    StratifiedKFold's splits) is reported against the spec, not as a
    traceback.
    """
    n = len(y)
    n_test = spec.cv.test_size if spec.cv.kind == "shuffle" else None
    if (spec.cv.n_splits and n < spec.cv.n_splits) or (
        isinstance(n_test, int) and n_test >= n
    ):
        raise err(
            where,
            "cv.n_splits",
            f"{n} samples are too few for {spec.cv.n_splits} folds",
            "use fewer folds or more data",
        )
    if getattr(spec.cv, "stratified", False):
        from sklearn.utils.multiclass import type_of_target

        if type_of_target(y) in ("continuous", "continuous-multioutput"):
            raise err(
                where,
                "cv.stratified",
                f"the target is continuous ({len(np.unique(y))} distinct values): "
                "stratified folds need classes",
                "drop stratified: true (plain KFold/ShuffleSplit) for a regression target",
            )
    splitter = spec.cv.splitter()
    try:
        for _ in splitter.split(X, y, groups):
            pass
    except ValueError as exc:
        key = "data.groups" if groups is not None else "cv"
        raise err(
            where,
            key,
            f"{type(splitter).__name__} cannot split this data ({exc})",
            "give more distinct groups or samples per class, or fewer splits",
        ) from exc
