"""CV folds persisted as memmappable joblib files, one directory per digest.

Runs on the driver (writing) and on the engines (reading). A split directory
`<workdir>/splits/<digest>/` holds `fold_NNN.pkl` files, each the tuple
`(X_train, y_train, X_test, y_test, fit_params)` dumped uncompressed so that
`joblib.load(..., mmap_mode="r")` maps the arrays straight from the page cache:
every engine of a host then shares one copy of the data in RAM. It also holds
`data.pkl`, `(X, y, fit_params)` for the whole data set, which a refit of the
best candidate fits on. The digest covers the data, the groups, the fit
parameters and the CV settings, so the same inputs give the same directory
and nothing is rewritten.

X may be a dense array, a pandas DataFrame, a scipy.sparse matrix or a
sequence of strings (raw text). joblib maps every numpy array inside it (a
DataFrame's numeric blocks, a sparse matrix's data/indices/indptr); strings
and categoricals' labels cannot be mapped, so each engine unpickles its own
copy of those (`shared_bytes` in the manifest says how much is shared).
`fit_params` holds the fit parameters of the fold's training rows:
per-sample arrays sliced as scikit-learn's `fit(X, y, **fit_params)` slices
them, constants as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

from runtime.digestdir import publish, sha256_file, write_sums

MANIFEST = "manifest.json"
FOLD_NAME = "fold_{:03d}.pkl"
#: The whole data set, for the refit of the best candidate.
DATA_NAME = "data.pkl"
SPLITS_SUBDIR = "splits"
#: Bumped when the on-disk layout changes, so old directories are not reused.
#: 3: folds carry their fit parameters, data.pkl, any kind of X.
FORMAT_VERSION = 3


@dataclass(frozen=True)
class SplitSet:
    """A persisted set of folds."""

    path: Path
    digest: str
    manifest: dict

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.manifest["folds"])

    def relative(self, fold: int) -> str:
        """The fold's path relative to a workdir: what a task carries."""
        return f"{SPLITS_SUBDIR}/{self.digest}/{self.manifest['folds'][fold]['file']}"

    def fold_path(self, fold: int) -> Path:
        """The fold's absolute path on this machine."""
        return self.path / self.manifest["folds"][fold]["file"]

    def data_relative(self) -> str:
        """The whole data set's file (data.pkl) relative to a workdir."""
        return f"{SPLITS_SUBDIR}/{self.digest}/{DATA_NAME}"


def data_digest(X, y, cv: dict, groups=None, fit_params: dict | None = None) -> str:
    """Digest of the data, groups, fit parameters and CV settings that decide the folds."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": FORMAT_VERSION, "cv": cv}, sort_keys=True).encode())
    for a in (X, y, groups, fit_params or {}):
        if isinstance(a, np.ndarray) and a.dtype.kind in "biufc":
            # Plain numeric arrays (the common, large case): their bytes.
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            if a.size:  # an empty array is its dtype and shape, hashed above
                h.update(memoryview(a).cast("B"))
        else:
            # Frames, sparse matrices, text, dicts: joblib's hash of the
            # pickle (array buffers hashed directly, so large ones stay fast).
            h.update(joblib.hash(a).encode())
    return h.hexdigest()[:20]


def n_samples(X) -> int:
    """Rows of X: an array, a DataFrame, a sparse matrix or a list of strings."""
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


def take(X, indices):
    """The rows `indices` of X, whatever its kind (scikit-learn's `_safe_indexing`)."""
    if hasattr(X, "iloc"):
        return X.iloc[indices]
    if isinstance(X, list | tuple):
        return [X[i] for i in indices]
    return canonical(X[indices])


def canonical(X):
    """A sparse matrix in canonical form (sorted indices, no duplicates); anything else as is.

    Estimators sort a sparse matrix's indices in place when they are not
    flagged sorted (SVC does), which fails on the read-only memmaps of a
    fold: sorted once here, the flag travels in the pickle.
    """
    if hasattr(X, "sum_duplicates") and not getattr(X, "has_canonical_format", True):
        X = X.copy()
        X.sum_duplicates()
    return X


def head(X, n: int):
    """The first `n` rows of X: a view where X's kind allows one (arrays, frames)."""
    if hasattr(X, "iloc"):
        return X.iloc[:n]
    return X[:n]


def subsample(fold: tuple, fraction: float, random_state: int) -> tuple:
    """A fold's training and test rows subsampled as scikit-learn's halving searches do.

    `_SubsampleMetaSplitter`: of each side's n rows, ``int(fraction * n)``
    drawn without replacement by `sklearn.utils.resample` with the search's
    integer random_state, in its order. The same seed draws the same
    permutation for every iteration, so a bigger fraction extends a smaller
    one. Copies of those rows (a shuffled subset is no view of the memmap).
    """
    from sklearn.utils import resample

    X_train, y_train, X_test, y_test, fit_params = fold
    n_train, n_test = len(y_train), len(y_test)
    train = resample(
        np.arange(n_train),
        replace=False,
        random_state=random_state,
        n_samples=int(fraction * n_train),
    )
    test = resample(
        np.arange(n_test),
        replace=False,
        random_state=random_state,
        n_samples=int(fraction * n_test),
    )
    return (
        take(X_train, train),
        take(y_train, train),
        take(X_test, test),
        take(y_test, test),
        slice_fit_params(fit_params, train, n_train),
    )


def slice_fit_params(fit_params: dict, indices, n_rows: int) -> dict:
    """The fit parameters of the rows `indices`: per-sample ones sliced, constants kept.

    Per-sample values are arrays (numpy, pandas) of `n_rows` entries, as
    scikit-learn's `_check_method_params` decides; a spec's constants are
    plain values (numbers, strings, lists), never sliced.
    """
    out = {}
    for k, v in fit_params.items():
        per_sample = isinstance(v, np.ndarray) or hasattr(v, "iloc")
        out[k] = take(v, indices) if per_sample and len(v) == n_rows else v
    return out


def persist_splits(
    X,
    y,
    splitter,
    cv: dict,
    workdir: str | os.PathLike,
    progress=None,
    *,
    groups=None,
    fit_params: dict | None = None,
) -> SplitSet:
    """Write the folds under `<workdir>/splits/<digest>/`, or reuse them.

    Parameters
    ----------
    X : ndarray, DataFrame, sparse matrix or sequence of str
        The features.
    y : ndarray
        The target.
    splitter : sklearn CV splitter
        Draws the folds (`splitter.split(X, y, groups)`).
    cv : dict
        The plain-types description of `splitter`, part of the digest.
    workdir : path
        The local workdir.
    progress : callable, optional
        Called as progress(i, n) after each fold is written.
    groups : array-like, optional
        Group labels for the splitter (GroupKFold...), part of the digest.
    fit_params : dict, optional
        Fit parameters: per-sample arrays (sliced per fold) and constants.

    Returns
    -------
    SplitSet
    """
    fit_params = dict(fit_params or {})
    digest = data_digest(X, y, cv, groups, fit_params)
    final = Path(workdir) / SPLITS_SUBDIR / digest
    if (final / MANIFEST).is_file():
        damaged = verify_split_set(final)
        if not damaged:
            return load_split_set(final)
        # Reused only whole: a truncated or edited fold must never be scored.
        warnings.warn(
            f"{final}: {'; '.join(damaged[:3])}: writing the folds again", stacklevel=2
        )
        shutil.rmtree(final)
    data = (X, y, groups, fit_params)
    publish(final, lambda tmp: _write_folds(tmp, data, splitter, cv, digest, progress))
    return load_split_set(final)


def _write_folds(tmp: Path, data, splitter, cv: dict, digest: str, progress) -> None:
    """Write every fold file, data.pkl, the manifest and SHA256SUMS into `tmp`."""
    X, y, groups, fit_params = data
    n = n_samples(X)
    folds = []
    splits = list(splitter.split(X, y, groups))
    for i, (train, test) in enumerate(splits):
        name = FOLD_NAME.format(i)
        fold = (
            take(X, train),
            y[train],
            take(X, test),
            y[test],
            slice_fit_params(fit_params, train, n),
        )
        joblib.dump(fold, tmp / name)
        folds.append(
            {
                "file": name,
                "sha256": sha256_file(tmp / name),
                "n_train": int(len(train)),
                "n_test": int(len(test)),
                "train_indices_sha256": hashlib.sha256(
                    np.asarray(train).tobytes()
                ).hexdigest(),
            }
        )
        if progress:
            progress(i + 1, len(splits))
    joblib.dump((canonical(X), y, fit_params), tmp / DATA_NAME)
    shared, total = mapped_bytes(X)
    manifest = {
        "format": FORMAT_VERSION,
        "digest": digest,
        "cv": cv,
        "n_samples": n,
        "n_features": n_features(X),
        "X_kind": x_kind(X),
        "X_dtype": X.dtype.str
        if isinstance(getattr(X, "dtype", None), np.dtype)
        else "mixed",
        "y_dtype": y.dtype.str,
        "nbytes": int(total + y.nbytes),
        # What joblib maps (shared by a host's engines) vs what each engine
        # unpickles for itself (strings, categoricals' labels, objects).
        "shared_bytes": int(shared + y.nbytes * (y.dtype.kind != "O")),
        "fit_params": sorted(fit_params),
        "folds": folds,
        "data": {"file": DATA_NAME, "sha256": sha256_file(tmp / DATA_NAME)},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    # The same checksums in `sha256sum -c` form: a remote host verifies
    # its copy with coreutils alone, before any Python is installed.
    sums = [(f["sha256"], f["file"]) for f in folds] + [
        (manifest["data"]["sha256"], DATA_NAME)
    ]
    write_sums(tmp, sums)


def x_kind(X) -> str:
    """What X is: dense, frame, sparse or text (a sequence of strings)."""
    if hasattr(X, "iloc"):
        return "frame"
    if hasattr(X, "tocsr"):
        return "sparse"
    if isinstance(X, np.ndarray) and X.dtype.kind in "biufc":
        return "dense"
    return "text"


def n_features(X) -> int | None:
    """Columns of X (None for raw text)."""
    shape = getattr(X, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) == 2 else None


def mapped_bytes(X) -> tuple[int, int]:
    """(bytes joblib can memory-map, all bytes) of X.

    A DataFrame's numeric columns and a sparse matrix's arrays are mapped;
    strings, categoricals and Python objects are not.
    """
    kind = x_kind(X)
    if kind == "dense":
        return int(X.nbytes), int(X.nbytes)
    if kind == "sparse":
        n = int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
        return n, n
    if kind == "frame":
        mem = X.memory_usage(index=False, deep=True)
        numeric = [c for c in X.columns if X[c].dtype.kind in "biufcmM"]
        return int(mem[numeric].sum()), int(mem.sum())
    total = int(sum(len(str(s).encode()) for s in X))
    return 0, total


def load_split_set(path: str | os.PathLike) -> SplitSet:
    """Open an existing split directory by its manifest."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{path}: not a split directory ({exc})") from exc
    return SplitSet(path=path, digest=manifest["digest"], manifest=manifest)


def verify_split_set(path: str | os.PathLike) -> list[str]:
    """Check every fold file against the manifest's sha256.

    Returns
    -------
    list of str
        One line per problem; empty when the directory is intact.
    """
    split = load_split_set(path)
    problems = []
    files = split.manifest["folds"] + [split.manifest["data"]]
    for fold in files:
        p = split.path / fold["file"]
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif sha256_file(p) != fold["sha256"]:
            problems.append(f"{p}: sha256 mismatch")
    return problems


def load_fold(path: str | os.PathLike, mmap_mode: str | None = "r"):
    """Load one fold as read-only memmaps: (X_train, y_train, X_test, y_test, fit_params)."""
    return joblib.load(path, mmap_mode=mmap_mode)
