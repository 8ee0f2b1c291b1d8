"""Unit tests of the persisted folds: layout, digest reuse, memmap loading, checksums."""

from __future__ import annotations

import json

import numpy as np
from sklearn.model_selection import ShuffleSplit

from runtime.folds import load_fold, persist_splits, verify_split_set


def _data(n=200, d=5, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, d), rng.randint(0, 2, n)


def test_folds_match_the_splitter_and_load_as_memmaps(tmp_path):
    X, y = _data()
    cv = ShuffleSplit(n_splits=3, test_size=0.25, random_state=1)
    split = persist_splits(X, y, cv, {"n_splits": 3}, tmp_path)
    assert split.path.parent == tmp_path / "splits"
    assert split.n_folds == 3
    manifest = json.loads((split.path / "manifest.json").read_text())
    assert manifest["n_samples"] == 200 and manifest["X_dtype"] == "<f8"
    for k, (train, test) in enumerate(cv.split(X, y)):
        Xtr, ytr, Xte, yte, fit_params = load_fold(split.fold_path(k))
        assert fit_params == {}
        assert isinstance(Xtr, np.memmap) and not Xtr.flags.writeable
        np.testing.assert_array_equal(Xtr, X[train])
        np.testing.assert_array_equal(yte, y[test])
    assert split.relative(2) == f"splits/{split.digest}/fold_002.pkl"


def test_same_data_and_cv_reuse_the_directory(tmp_path):
    X, y = _data()
    cv = ShuffleSplit(n_splits=2, random_state=0)
    a = persist_splits(X, y, cv, {"rs": 0}, tmp_path)
    mtime = a.fold_path(0).stat().st_mtime_ns
    b = persist_splits(X, y, cv, {"rs": 0}, tmp_path)
    assert b.path == a.path and b.fold_path(0).stat().st_mtime_ns == mtime
    # Other CV settings or other data give another digest.
    c = persist_splits(
        X, y, ShuffleSplit(n_splits=2, random_state=1), {"rs": 1}, tmp_path
    )
    X2 = X.copy()
    X2[0, 0] += 1
    d = persist_splits(X2, y, cv, {"rs": 0}, tmp_path)
    assert len({a.digest, c.digest, d.digest}) == 3
    assert sorted(p.name for p in (tmp_path / "splits").iterdir()) == sorted(
        [a.digest, c.digest, d.digest]
    )


def test_verify_detects_a_corrupted_fold(tmp_path):
    X, y = _data()
    split = persist_splits(X, y, ShuffleSplit(n_splits=2, random_state=0), {}, tmp_path)
    assert verify_split_set(split.path) == []
    with open(split.fold_path(1), "r+b") as f:
        f.seek(-8, 2)
        f.write(b"garbage!")
    problems = verify_split_set(split.path)
    assert len(problems) == 1 and "fold_001.pkl: sha256 mismatch" in problems[0]


def test_a_damaged_split_directory_is_written_again_private_and_temps_of_the_dead_go(
    tmp_path,
):
    import os
    import stat

    import pytest

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    cv = ShuffleSplit(3, random_state=0)
    split = persist_splits(X, y, cv, {"rs": 0}, tmp_path)
    # Private: folds are pickles, whoever can write them runs code in the engines.
    assert stat.S_IMODE(split.path.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in split.path.iterdir()} == {0o600}
    # A temporary folder of a writer that was killed (no such pid) is removed.
    dead = split.path.parent / f".{split.digest}-4194999-tmp-abcd"
    dead.mkdir()
    fold = split.fold_path(0)
    good = load_fold(fold, mmap_mode=None)
    with open(fold, "r+b") as f:
        f.truncate(fold.stat().st_size // 2)
    with pytest.warns(
        UserWarning, match=rf"{fold}: sha256 mismatch: writing the folds"
    ):
        again = persist_splits(X, y, cv, {"rs": 0}, tmp_path)
    assert again.path == split.path and verify_split_set(again.path) == []
    np.testing.assert_array_equal(load_fold(fold, mmap_mode=None)[0], good[0])
    assert not dead.exists() and os.listdir(split.path.parent) == [split.digest]
