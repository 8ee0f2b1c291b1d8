"""CV folds persisted as memmappable joblib files, one directory per digest.

Runs on the driver (writing) and on the engines (reading). A split directory
`<workdir>/splits/<digest>/` holds `fold_NNN.pkl` files, each the tuple
`(X_train, y_train, X_test, y_test)` dumped uncompressed so that
`joblib.load(..., mmap_mode="r")` maps the arrays straight from the page cache:
every engine of a host then shares one copy of the data in RAM. The digest
covers the data and the CV settings, so the same data and CV give the same
directory and nothing is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
FOLD_NAME = "fold_{:03d}.pkl"
SPLITS_SUBDIR = "splits"
#: Bumped when the on-disk layout changes, so old directories are not reused.
FORMAT_VERSION = 2
_CHUNK = 1 << 20


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


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def data_digest(X: np.ndarray, y: np.ndarray, cv: dict) -> str:
    """Digest of the data and the CV settings that decide the folds."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": FORMAT_VERSION, "cv": cv}, sort_keys=True).encode())
    for a in (X, y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:20]


def persist_splits(
    X: np.ndarray,
    y: np.ndarray,
    splitter,
    cv: dict,
    workdir: str | os.PathLike,
    progress=None,
) -> SplitSet:
    """Write the folds under `<workdir>/splits/<digest>/`, or reuse them.

    Parameters
    ----------
    X, y : ndarray
        The data set.
    splitter : sklearn CV splitter
        Draws the folds (`splitter.split(X, y)`).
    cv : dict
        The plain-types description of `splitter`, part of the digest.
    workdir : path
        The local workdir.
    progress : callable, optional
        Called as progress(i, n) after each fold is written.

    Returns
    -------
    SplitSet
    """
    digest = data_digest(X, y, cv)
    final = Path(workdir) / SPLITS_SUBDIR / digest
    existing = load_split_set(final) if (final / MANIFEST).is_file() else None
    if existing is not None:
        return existing
    final.parent.mkdir(parents=True, exist_ok=True)
    # Write into a sibling temp dir and rename, so a crash never leaves a
    # half-written directory that a later run would take as complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=final.parent))
    try:
        _write_folds(tmp, X, y, splitter, cv, digest, progress)
        os.chmod(tmp, 0o755)
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished the same digest first: use theirs.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_split_set(final)


def _write_folds(tmp: Path, X, y, splitter, cv: dict, digest: str, progress) -> None:
    """Write every fold file, the manifest and SHA256SUMS into `tmp`."""
    folds = []
    splits = list(splitter.split(X, y))
    for i, (train, test) in enumerate(splits):
        name = FOLD_NAME.format(i)
        joblib.dump((X[train], y[train], X[test], y[test]), tmp / name)
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
    manifest = {
        "format": FORMAT_VERSION,
        "digest": digest,
        "cv": cv,
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "X_dtype": X.dtype.str,
        "y_dtype": y.dtype.str,
        "nbytes": int(X.nbytes + y.nbytes),
        "folds": folds,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    # The same checksums in `sha256sum -c` form: a remote host verifies
    # its copy with coreutils alone, before any Python is installed.
    (tmp / SUMS).write_text("".join(f"{f['sha256']}  {f['file']}\n" for f in folds))


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
    for fold in split.manifest["folds"]:
        p = split.path / fold["file"]
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif sha256_file(p) != fold["sha256"]:
            problems.append(f"{p}: sha256 mismatch")
    return problems


def load_fold(path: str | os.PathLike, mmap_mode: str | None = "r"):
    """Load one fold as read-only memmaps: (X_train, y_train, X_test, y_test)."""
    return joblib.load(path, mmap_mode=mmap_mode)
