"""The `data` and `fit_params` sections of a search spec: where the data comes from.

Runs on the driver (the laptop). Only the description is checked here (keys,
types, file suffixes); `fleetcv.spec.data` reads the data and checks it
against the estimator and the folds.

- ``data: {loader: IMPORT.PATH, loader_params: {...}}``: a callable returning
  (X, y), (X, y, groups) or a Bunch (``data``, ``target``);
- ``data: {path: FILE, target: COLUMN, dtype: {COLUMN: DTYPE}}``: a ``.csv`` or
  ``.parquet`` table (a pandas DataFrame: names, dtypes, NaN kept), a
  ``.npy`` table, a ``.npz`` with arrays X and y, or a sparse matrix saved by
  `scipy.sparse.save_npz` with its target in ``target_path`` (.npy/.csv);
- ``data.groups``: a column of the table (dropped from X) or ``{path:
  FILE}``, the group labels of a group splitter;
- ``fit_params: {NAME: {column: COLUMN} | {path: FILE} | VALUE}``: per-sample
  fit parameters (sliced per fold) and constants, as `fit(X, y, **fit_params)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcv.spec.common import check_keys, err, import_checked

#: File types `data.path` reads.
TABLE_SUFFIXES = (".csv", ".parquet", ".npy", ".npz")
#: File types an array (groups, a target, a fit parameter) is read from.
ARRAY_SUFFIXES = (".npy", ".csv")
_DATA_FIX = "write data: {loader: sklearn.datasets.load_digits} or data: {path: train.csv, target: label}"


@dataclass(frozen=True)
class ArrayRef:
    """One per-sample array: a column of the table, or a file (.npy, or a one-column .csv)."""

    column: str | int | None = None
    path: str | None = None


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from (see the module docstring)."""

    loader: str | None = None
    loader_params: dict = field(default_factory=dict)
    path: str | None = None
    target: str | int | None = None
    target_path: str | None = None
    dtype: dict = field(default_factory=dict)
    groups: ArrayRef | None = None


def parse_data(where: str, raw: Any, base: Path) -> DataSpec:
    """Validate the ``data`` section (paths resolved against `base`).

    Raises
    ------
    ConfigError
        Naming the first bad key, its value and the fix.
    """
    if not isinstance(raw, dict):
        raise err(where, "data", f"expected a mapping, got {raw!r}", _DATA_FIX)
    check_keys(
        where,
        "data.",
        raw,
        {"loader", "loader_params", "path", "target", "target_path", "dtype", "groups"},
    )
    if ("loader" in raw) == ("path" in raw):
        raise err(where, "data", "give exactly one of loader or path", _DATA_FIX)
    groups = (
        parse_array_ref(where, "data.groups", raw["groups"], base)
        if raw.get("groups") is not None
        else None
    )
    if "loader" in raw:
        for k in ("target", "target_path", "dtype"):
            if k in raw:
                raise err(
                    where,
                    f"data.{k}",
                    "goes with data.path, not with a loader",
                    "return the target from the loader, or read a file with data.path",
                )
        import_checked(
            where,
            "data.loader",
            raw["loader"],
            "give the import path of a loader, e.g. sklearn.datasets.load_digits",
        )
        lp = raw.get("loader_params") or {}
        if not isinstance(lp, dict):
            raise err(
                where,
                "data.loader_params",
                f"expected a mapping, got {lp!r}",
                "write loader_params: {n_class: 10}",
            )
        return DataSpec(loader=raw["loader"], loader_params=dict(lp), groups=groups)
    p = _file(where, "data.path", raw["path"], base, TABLE_SUFFIXES)
    dtype = raw.get("dtype") or {}
    if dtype and (not isinstance(dtype, dict) or p.suffix not in (".csv", ".parquet")):
        raise err(
            where,
            "data.dtype",
            f"expected a mapping of column -> dtype for a .csv/.parquet table, got {dtype!r}",
            "write dtype: {plan: category, age: float64}",
        )
    target_path = None
    if raw.get("target_path") is not None:
        target_path = str(
            _file(where, "data.target_path", raw["target_path"], base, ARRAY_SUFFIXES)
        )
    return DataSpec(
        path=str(p),
        target=raw.get("target"),
        target_path=target_path,
        dtype={str(k): str(v) for k, v in dtype.items()},
        groups=groups,
    )


def parse_array_ref(where: str, key: str, raw: Any, base: Path) -> ArrayRef:
    """A per-sample array: a column name/index of the table, or ``{path: FILE}``."""
    if isinstance(raw, dict):
        check_keys(where, key + ".", raw, {"path", "column"})
        if ("path" in raw) == ("column" in raw):
            raise err(
                where,
                key,
                "give exactly one of column or path",
                f"write {key.split('.')[-1]}: {{column: NAME}}",
            )
        if "path" in raw:
            return ArrayRef(
                path=str(_file(where, f"{key}.path", raw["path"], base, ARRAY_SUFFIXES))
            )
        raw = raw["column"]
    if isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return ArrayRef(column=raw)
    raise err(
        where,
        key,
        f"expected a column name or {{path: FILE}}, got {raw!r}",
        f"write {key.split('.')[-1]}: {{column: NAME}} or {{path: values.npy}}",
    )


def parse_fit_params(where: str, raw: Any, base: Path) -> dict:
    """The ``fit_params`` section: name -> ArrayRef (per sample) or a constant."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise err(
            where,
            "fit_params",
            f"expected a mapping, got {raw!r}",
            "write fit_params: {svc__sample_weight: {column: weight}}",
        )
    out: dict = {}
    for name, value in raw.items():
        key = f"fit_params.{name}"
        if isinstance(value, dict) and set(value) & {"column", "path"}:
            out[str(name)] = parse_array_ref(where, key, value, base)
        else:
            out[str(name)] = value
    return out


def _file(
    where: str, key: str, raw: Any, base: Path, suffixes: tuple[str, ...]
) -> Path:
    p = Path(os.path.expanduser(str(raw)))
    if not p.is_absolute():
        p = base / p
    if p.suffix not in suffixes:
        raise err(
            where,
            key,
            f"unsupported file type {p.suffix!r} ({raw})",
            f"use a {'/'.join(suffixes)} file",
        )
    return p
