"""Searches on real local ipyparallel engines, checked against scikit-learn itself."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import ShuffleSplit
from sklearn.svm import SVC

from fleetcv.dispatch import runner as search_mod
from fleetcv.dispatch.search import DistributedSearch
from fleetcv.rundir import journal as jn
from fleetcv.rundir.results import expected_times
from fleetcv.spec import load_data, load_search_spec
from runtime.folds import load_split_set, persist_splits
from tests.conftest import RANDOM_SPEC, REFERENCE_SPEC, random_spec_reference

pytestmark = pytest.mark.cluster


def _splits(spec, cfg):
    X, y = load_data(spec)
    return (
        X,
        y,
        persist_splits(
            X, y, spec.cv.splitter(), spec.cv.as_dict(), cfg.local_host.workdir_path
        ),
    )


def _spec_search(view, spec, run_dir) -> DistributedSearch:
    """A search of every candidate of `spec`, journaled in `run_dir`."""
    return DistributedSearch(
        view, spec.estimator.build(), candidates=spec.candidates(), run_dir=run_dir
    )


@pytest.fixture(scope="module")
def reference(local_cluster, sklearn_reference, tmp_path_factory):
    """The reference grid searched by fleetcv, and by GridSearchCV on the same folds."""
    cfg, client = local_cluster
    spec = load_search_spec(REFERENCE_SPEC)
    _, _, split = _splits(spec, cfg)
    run_dir = tmp_path_factory.mktemp("runs") / "ref"
    search = _spec_search(client.load_balanced_view(), spec, run_dir)
    search.launch(split).wait()
    return search, sklearn_reference, run_dir, split


def test_grid_search_equals_gridsearchcv(reference):
    search, grid, run_dir, _ = reference
    ours = json.loads((run_dir / jn.RESULTS).read_text())
    theirs = grid.cv_results_
    # Every key of sklearn's cv_results_ is in results.json, with its meaning.
    assert set(theirs) <= set(ours)
    for key in theirs:
        if key.endswith("_score") and not key.startswith("rank"):
            np.testing.assert_allclose(
                ours[key], theirs[key], rtol=0, atol=1e-12, err_msg=key
            )
    assert ours["rank_test_score"] == theirs["rank_test_score"].tolist()
    assert ours["params"] == [
        {k: float(v) for k, v in p.items()} for p in theirs["params"]
    ]
    assert ours["param_C"] == [float(v) for v in theirs["param_C"]]
    assert search.best_params_ == {k: float(v) for k, v in grid.best_params_.items()}
    assert abs(search.best_score_ - grid.best_score_) <= 1e-12
    assert ours["best_params"] == search.best_params_ and ours["status"] == "finished"
    assert search.n_done == 100 and sum(ours["n_finished_splits"]) == 100


def test_small_folds_do_not_go_fold_by_fold(reference):
    search, _, _, split = reference
    assert split.fold_path(0).stat().st_size < search_mod.FOLD_BY_FOLD_BYTES
    assert search.runner.fold_by_fold is False


def test_big_folds_go_fold_by_fold_with_the_same_results(
    local_cluster, sklearn_reference, tmp_path, monkeypatch
):
    cfg, client = local_cluster
    spec = load_search_spec(REFERENCE_SPEC)
    _, _, split = _splits(spec, cfg)
    # The digits folds are far below the size at which a search goes fold by
    # fold on its own: lower the threshold so the automatic choice takes it.
    monkeypatch.setattr(search_mod, "FOLD_BY_FOLD_BYTES", 1)
    search = _spec_search(client.load_balanced_view(), spec, tmp_path / "run")
    search.launch(split).wait()
    assert search.runner.fold_by_fold is True
    assert search.status == "finished" and search.n_done == 100
    recs = [r for r in search.records if r["status"] == "ok"]
    assert len(recs) == 100
    for k in range(1, split.n_folds):
        first_of_k = min(r["started"] for r in recs if r["fold"] == k)
        last_of_previous = max(r["ended"] for r in recs if r["fold"] == k - 1)
        assert first_of_k >= last_of_previous, (
            f"fold {k} started before fold {k - 1} ended"
        )
    ours = search.cv_results_
    for key in ("mean_test_score", "std_test_score", "mean_train_score"):
        np.testing.assert_allclose(
            ours[key], sklearn_reference.cv_results_[key], rtol=0, atol=1e-12
        )


def test_journal_has_one_record_per_task_with_provenance(reference):
    _, _, run_dir, _ = reference
    records = jn.read_journal(run_dir / jn.JOURNAL)
    assert len(records) == 100
    assert {(r["candidate"], r["fold"]) for r in records} == {
        (c, k) for c in range(20) for k in range(5)
    }
    for r in records:
        assert r["status"] == "ok" and r["error"] is None
        assert r["host"] == "localhost" and r["engine"] in (0, 1) and r["pid"] > 0
        assert r["peak_rss"] >= r["rss"] > 0 and r["fit_time"] > 0
    # Both engines did work: the view balanced the load.
    assert {r["engine"] for r in records} == {0, 1}
    report = (run_dir / jn.REPORT).read_text()
    assert report.startswith("Finished: 100% (100/100)")
    assert (
        "Rank 1: validation: 0.99022 (+/-0.00151) train: 0.99896 (+/-0.00038):"
        in report
    )


def test_a_timed_rerun_goes_longest_first_in_fewer_messages_with_the_same_results(
    reference, local_cluster, tmp_path
):
    first, grid, _, split = reference
    _, client = local_cluster
    expected = expected_times(first.records)
    spec = load_search_spec(REFERENCE_SPEC)
    run_dir = tmp_path / "timed"
    s = _spec_search(client.load_balanced_view(), spec, run_dir)
    s.launch(split, expected_times=expected).wait()
    assert s.status == "finished" and s.n_done == 100
    for key in ("mean_test_score", "std_test_score", "mean_train_score"):
        np.testing.assert_allclose(
            s.cv_results_[key], grid.cv_results_[key], rtol=0, atol=1e-12
        )
    # Messages in the order they were sent, each with its tasks.
    sent = (run_dir / jn.SUBMITTED).read_text().split()
    records = jn.read_journal(run_dir / jn.JOURNAL)
    tasks: dict[str, list] = {m: [] for m in sent}
    folds: dict[str, list] = {m: [] for m in sent}
    for r in records:
        tasks[r["message"]].append(expected[r["candidate"]])
        folds[r["message"]].append(r["fold"])
    assert len(sent) == s.n_messages < 100 and sum(map(len, tasks.values())) == 100
    # Each message within its budget: at most CHUNK_SECONDS of expected work
    # and a quarter (2 engines) of the work not yet sent.
    remaining = sum(expected.values()) * split.n_folds
    for m in sent:
        budget = min(search_mod.CHUNK_SECONDS, remaining / (search_mod.BALANCE * 2))
        assert len(tasks[m]) == 1 or sum(tasks[m]) <= budget + 1e-9, m
        remaining -= sum(tasks[m])
    # Longest first: no task of a message is shorter than one sent after it.
    for a, b in itertools.pairwise(sent):
        assert min(tasks[a]) >= max(tasks[b]), (a, b)
    # Within a message, fold order: the engine's one-fold cache then hits.
    for m in sent:
        assert folds[m] == sorted(folds[m]), m


def test_a_task_that_raises_on_its_engine_fails_alone_not_its_whole_message(
    reference, local_cluster, tmp_path
):
    first, grid, _, _ = reference
    _, client = local_cluster
    spec = load_search_spec(REFERENCE_SPEC)
    X, y = load_data(spec)
    made = persist_splits(X, y, spec.cv.splitter(), spec.cv.as_dict(), tmp_path)
    # Outside a workdir's splits/ folder tasks carry absolute paths, so the
    # engines look for exactly these files; fold 1 is then lost.
    split = load_split_set(shutil.move(made.path, tmp_path / "folds"))
    split.fold_path(1).unlink()
    s = _spec_search(client.load_balanced_view(), spec, tmp_path / "run")
    s.launch(split, expected_times=expected_times(first.records)).wait()
    records = jn.read_journal(tmp_path / "run" / jn.JOURNAL)
    errors = [r for r in records if r["status"] == "error"]
    assert {(r["candidate"], r["fold"]) for r in errors} == {(c, 1) for c in range(20)}
    assert all(
        "FileNotFoundError" in r["error"] and "fold_001" in r["error"] for r in errors
    )
    assert s.status == "incomplete" and s.n_done == 80
    assert s.counters["task errors"] == 20
    # Messages mixed folds; their other tasks kept their scores.
    ok = [r for r in records if r["status"] == "ok"]
    assert {r["message"] for r in errors} & {r["message"] for r in ok}
    for k in (0, 2, 3, 4):
        np.testing.assert_allclose(
            s.cv_results_[f"split{k}_test_score"],
            grid.cv_results_[f"split{k}_test_score"],
            rtol=0,
            atol=1e-12,
        )


def test_randomized_search_is_reproducible_and_equals_randomizedsearchcv(
    local_cluster, tmp_path
):
    cfg, client = local_cluster
    spec = load_search_spec(RANDOM_SPEC)
    X, y, split = _splits(spec, cfg)
    view = client.load_balanced_view()
    runs = []
    for i in range(2):
        s = _spec_search(view, spec, tmp_path / f"r{i}")
        s.launch(split).wait()
        runs.append(s)
    a, b = runs
    assert len(a.candidates) == 10 and a.n_tasks == 50 and a.n_done == 50
    assert len(jn.read_journal(tmp_path / "r0" / jn.JOURNAL)) == 50
    assert a.candidates == b.candidates
    assert a.results_["mean_test_score"] == b.results_["mean_test_score"]
    ref = random_spec_reference(10)
    assert a.candidates == ref.cv_results_["params"]
    np.testing.assert_allclose(
        a.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )


def test_a_fit_that_raises_is_recorded_and_the_search_completes(
    local_cluster, tmp_path
):
    cfg, client = local_cluster
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    split = persist_splits(
        X,
        y,
        ShuffleSplit(3, random_state=0),
        {"t": "fail"},
        cfg.local_host.workdir_path,
    )
    # SVC validates C at fit time: C=-1 raises InvalidParameterError there.
    s = DistributedSearch(
        client.load_balanced_view(), SVC(), {"C": [-1.0, 1.0]}, run_dir=tmp_path / "run"
    )
    s.launch(split).wait()
    res = s.results_
    assert s.status == "finished" and s.n_done == 6
    assert res["n_failed_fits"] == [3, 0]
    assert all(
        math.isnan(v) for v in (res[f"split{k}_test_score"][0] for k in range(3))
    )
    assert res["rank_test_score"] == [2, 1] and s.best_params_ == {"C": 1.0}
    failed = [
        r
        for r in jn.read_journal(tmp_path / "run" / jn.JOURNAL)
        if r["status"] == "fit_failed"
    ]
    assert len(failed) == 3 and all(
        "InvalidParameterError" in r["error"] for r in failed
    )
    report = s.report()
    assert "3 failed fits" in report and "3 of the 6 fits failed" in report


def test_abort_leaves_a_consistent_journal_and_resume_completes(
    local_cluster, tmp_path
):
    cfg, client = local_cluster
    spec = load_search_spec(REFERENCE_SPEC)
    _, _, split = _splits(spec, cfg)
    view = client.load_balanced_view()
    run_dir = tmp_path / "run"
    s = _spec_search(view, spec, run_dir)
    s.launch(split)
    deadline = time.monotonic() + 60
    while s.n_done < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    s.abort()
    assert s.status == "aborted"
    records = jn.read_journal(run_dir / jn.JOURNAL)
    pairs = [(r["candidate"], r["fold"]) for r in records]
    assert 6 <= len(pairs) < 100 and len(set(pairs)) == len(pairs)
    results = json.loads((run_dir / jn.RESULTS).read_text())
    assert results["status"] == "aborted" and results["n_done"] == len(pairs)
    assert s.report().startswith(f"Aborted at: {100 * len(pairs) // 100:02d}%")
    # Nothing of the aborted search is left queued: a new search gets the engines.
    client.wait(timeout=30)
    resumed = _spec_search(view, spec, run_dir)
    assert resumed.n_done == len(pairs)
    resumed.launch(split).wait()
    assert resumed.n_done == 100
    records = jn.read_journal(run_dir / jn.JOURNAL)
    assert len(records) == 100, (
        "resume evaluated only the missing (candidate, fold) pairs"
    )
    assert resumed.best_params_ == {"C": 1.0, "gamma": 0.001}


def test_engines_share_one_copy_of_a_memmapped_fold(local_cluster, tmp_path):
    cfg, client = local_cluster
    rng = np.random.RandomState(0)
    X = rng.rand(40_000, 100)  # a 24 MB training fold: far above per-process noise
    y = rng.randint(0, 2, len(X))
    split = persist_splits(
        X,
        y,
        ShuffleSplit(1, test_size=0.25, random_state=0),
        {"t": "mem"},
        cfg.local_host.workdir_path,
    )
    fold_bytes = int(0.75 * X.nbytes)
    dview = client[:]
    dview.execute(
        "import joblib, psutil\n"
        "_m0 = psutil.Process().memory_full_info()\n"
        f"_fold = joblib.load({str(split.fold_path(0))!r}, mmap_mode='r')\n"
        "_touch = float(_fold[0].sum())\n"
        "_m1 = psutil.Process().memory_full_info()\n"
        "_delta = dict(uss=_m1.uss - _m0.uss, rss=_m1.rss - _m0.rss, pss=_m1.pss - _m0.pss)\n",
        block=True,
    )
    # Both engines hold the mapping now; measure again while they do.
    dview.execute(
        "_m2 = psutil.Process().memory_full_info()\n"
        "_held = dict(uss=_m2.uss - _m0.uss, rss=_m2.rss - _m0.rss, pss=_m2.pss - _m0.pss)\n",
        block=True,
    )
    held = dview.pull("_held", block=True)
    try:
        for h in held:
            # The whole fold is resident in each engine...
            assert h["rss"] >= 0.9 * fold_bytes, h
            # ...but none of it is private to either of them.
            assert h["uss"] < 0.1 * fold_bytes, h
        # Proportional set size splits the shared pages: together about one copy.
        assert sum(h["pss"] for h in held) < 1.2 * fold_bytes
    finally:
        dview.execute("del _fold", block=True)


@pytest.mark.parametrize(
    "cv",
    [
        {"class": "sklearn.model_selection.TimeSeriesSplit", "params": {"n_splits": 4}},
        {
            "class": "sklearn.model_selection.RepeatedStratifiedKFold",
            "params": {"n_splits": 3, "n_repeats": 2, "random_state": 0},
        },
    ],
    ids=["TimeSeriesSplit", "RepeatedStratifiedKFold"],
)
def test_any_splitter_by_import_path_equals_gridsearchcv(local_cluster, tmp_path, cv):
    import yaml
    from sklearn.model_selection import GridSearchCV

    cfg, client = local_cluster
    raw = yaml.safe_load(open(REFERENCE_SPEC))
    raw.update(cv=cv, params={"C": [1.0, 10.0], "gamma": [0.001]})
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_search_spec(path)
    X, y, split = _splits(spec, cfg)
    s = _spec_search(client.load_balanced_view(), spec, tmp_path / "run")
    s.launch(split).wait()
    grid = GridSearchCV(
        spec.estimator.build(),
        {"C": [1.0, 10.0], "gamma": [0.001]},
        cv=spec.cv.splitter(),
        return_train_score=True,
    ).fit(X, y)
    assert split.n_folds == grid.n_splits_ == spec.cv.n_splits
    for key in ("mean_test_score", "std_test_score", "mean_train_score"):
        np.testing.assert_allclose(
            s.cv_results_[key], grid.cv_results_[key], rtol=0, atol=1e-12, err_msg=key
        )
    for k in range(split.n_folds):
        np.testing.assert_allclose(
            s.cv_results_[f"split{k}_test_score"],
            grid.cv_results_[f"split{k}_test_score"],
            rtol=0,
            atol=1e-12,
        )
    assert s.results_["rank_test_score"] == grid.cv_results_["rank_test_score"].tolist()
