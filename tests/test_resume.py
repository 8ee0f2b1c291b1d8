"""Unit tests of the resume checks: what a run directory must match to be resumed."""

from __future__ import annotations

import json

import pytest
import yaml

from fleetcv.dispatch import lifecycle as driver
from fleetcv.rundir import run as rundir
from fleetcv.spec import ConfigError, load_search_spec
from tests.conftest import REFERENCE_SPEC, local_hosts


@pytest.fixture
def run(tmp_path):
    cfg = local_hosts(tmp_path, engines=1)
    spec = load_search_spec(REFERENCE_SPEC, n_iter=4)
    split = driver.prepare_splits(spec, cfg, log=lambda m: None)
    rdir = driver.create_run(
        spec,
        split,
        driver.search_job_of(spec),
        runs_root=tmp_path / "runs",
        command="invoke search --n-iter 4",
    )
    return rdir, spec, split, cfg


def test_resume_keeps_n_iter_and_candidates(run):
    rdir, spec, _, _ = run
    again, meta = rundir.load_resume(rdir)
    # The candidates drawn at the start are kept (no random_state: a new draw
    # would differ), and resume uses exactly those.
    assert again.digest() == spec.digest() and len(meta["candidates"]) == 4
    with pytest.raises(
        ConfigError, match=r"--n-iter 5: the run was started with --n-iter 4"
    ):
        rundir.load_resume(rdir, n_iter=5)


def test_resume_refuses_another_spec(run, tmp_path):
    rdir, _, _, _ = run
    other = yaml.safe_load(open(REFERENCE_SPEC))
    other["params"]["C"] = [1.0, 2.0]
    p = tmp_path / "other.yml"
    p.write_text(yaml.safe_dump(other))
    with pytest.raises(
        ConfigError,
        match=r"--spec .*other\.yml: differs from the spec this run was started with",
    ):
        rundir.load_resume(rdir, spec_file=str(p), n_iter=4)


def test_resume_refuses_an_edited_spec_copy_and_a_non_run(run, tmp_path):
    rdir, _, _, _ = run
    copy = rdir / "spec.yml"
    copy.write_text(copy.read_text().replace("random_state: 42", "random_state: 7"))
    with pytest.raises(ConfigError, match=r"spec\.yml: changed since the run started"):
        rundir.load_resume(rdir)
    with pytest.raises(
        ConfigError, match=r"not a fleetcv run directory \(no meta\.json\)"
    ):
        rundir.load_resume(tmp_path)


def test_resume_refuses_a_curve_run_and_new_run_refuses_a_used_dir(run, tmp_path):
    rdir, spec, split, cfg = run
    meta = json.loads((rdir / "meta.json").read_text())
    (rdir / "meta.json").write_text(json.dumps({**meta, "kind": "learning_curve"}))
    with pytest.raises(
        ConfigError,
        match=r"this is a learning curve run, not a search\. Fix: invoke curves\.learning --resume",
    ):
        driver.plan_resume(rdir, cfg, ("search",))
    (rdir / "meta.json").write_text(json.dumps(meta))  # a search again
    with pytest.raises(
        ConfigError,
        match=r"a search run, not a curve\. Fix: resume it with invoke search --resume",
    ):
        driver.plan_resume(rdir, cfg, ("learning_curve", "validation_curve"))
    before = sorted(p.name for p in rdir.iterdir())
    with pytest.raises(
        ConfigError, match=r"--run-dir: .* already exists and is not empty"
    ):
        driver.create_run(
            spec, split, driver.search_job_of(spec), run_dir=rdir, command="x"
        )
    assert sorted(p.name for p in rdir.iterdir()) == before, (
        "a refused run must not touch the directory"
    )


def _new_run(spec, runs_root, run_dir, split, command):
    return driver.create_run(
        spec,
        split,
        driver.search_job_of(spec),
        runs_root=runs_root,
        run_dir=run_dir,
        command=command,
    )


def test_reuse_takes_fits_of_earlier_runs_of_the_same_estimator_and_folds(tmp_path):
    from fleetcv.rundir import journal as jn
    from runtime.worker import evaluate

    cfg = local_hosts(tmp_path, engines=1)
    spec = load_search_spec(REFERENCE_SPEC)
    split = driver.prepare_splits(spec, cfg, log=lambda m: None)
    first = _new_run(
        spec, tmp_path / "runs", tmp_path / "runs" / "first", split, command="x"
    )
    meta = rundir.read_meta(first)
    # Three real fits, made here without a cluster, as the first run's journal.
    journal = jn.Journal(first / jn.JOURNAL)
    for c, k in [(0, 0), (6, 1), (6, 2)]:
        journal.append(
            evaluate(
                fold_ref=str(split.fold_path(k)),
                estimator=spec.estimator.build(),
                params=meta["candidates"][c],
                candidate=c,
                fold=k,
            )
        )
    journal.close()

    second = _new_run(
        spec, tmp_path / "runs", tmp_path / "runs" / "second", split, command="x"
    )
    assert (
        rundir.reuse_results(second, rundir.read_meta(second), log=lambda m: None) == 3
    )
    reused = jn.read_journal(second / jn.JOURNAL)
    assert sorted((r["candidate"], r["fold"]) for r in reused) == [
        (0, 0),
        (6, 1),
        (6, 2),
    ]
    assert all(r["reused_from"] == "first" for r in reused)
    # Taken once: a second call finds them in its own journal already.
    assert (
        rundir.reuse_results(second, rundir.read_meta(second), log=lambda m: None) == 0
    )

    # Another scoring is another evaluation: nothing is reused.
    other = yaml.safe_load(open(REFERENCE_SPEC))
    other["scoring"] = "balanced_accuracy"
    p = tmp_path / "other.yml"
    p.write_text(yaml.safe_dump(other))
    spec2 = load_search_spec(p, base_dir=None)
    third = _new_run(
        spec2, tmp_path / "runs", tmp_path / "runs" / "third", split, command="x"
    )
    assert rundir.reuse_results(third, rundir.read_meta(third), log=lambda m: None) == 0


def test_a_run_made_before_kinds_existed_reads_as_a_search(run):
    """meta.json of fleetcv < 0.4 has no "kind": resume, report and plots take it as a search."""
    from fleetcv.report.html import finish_run
    from fleetcv.rundir import journal as jn
    from runtime.worker import evaluate

    rdir, spec, split, cfg = run
    meta = json.loads((rdir / "meta.json").read_text())
    del meta["kind"]
    # Its driver died mid-run (no live pid): `invoke report` says interrupted.
    meta.update(status="running", driver_pid=0)
    (rdir / "meta.json").write_text(json.dumps(meta))
    journal = jn.Journal(rdir / jn.JOURNAL)
    journal.append(
        evaluate(
            fold_ref=str(split.fold_path(0)),
            estimator=spec.estimator.build(),
            params=meta["candidates"][0],
            candidate=0,
            fold=0,
        )
    )
    journal.close()
    driver.check_kind(rdir, meta, ("search",))  # no error: a search
    text = driver.rebuild(rdir)
    assert text.startswith("Interrupted at: 05% (001/020)"), text
    results = json.loads((rdir / "results.json").read_text())
    assert results["n_finished_splits"][0] == 1 and results["best_params"] is None
    out = finish_run(rdir)
    assert out["report"].is_file() and out["plots"]


def test_the_journal_cuts_a_torn_tail_warns_on_a_garbled_middle_and_syncs_by_timer(
    tmp_path,
):
    import time
    import warnings

    from fleetcv.rundir import journal as jnl

    path = tmp_path / jnl.JOURNAL
    path.write_text('{"candidate": 0, "fold": 0}\n{"candidate": 1, "fo')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a torn last line is expected: no warning
        assert jnl.read_journal(path) == [{"candidate": 0, "fold": 0}]
    j = jnl.Journal(path)
    j.append({"candidate": 2, "fold": 0})
    # The torn record is cut off; the new one is on a line of its own.
    assert (
        path.read_text() == '{"candidate": 0, "fold": 0}\n{"candidate": 2, "fold": 0}\n'
    )
    # fsynced by the timer within FSYNC_INTERVAL, not at the next append.
    deadline = time.monotonic() + 10 * jnl.FSYNC_INTERVAL
    while j._dirty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not j._dirty and j.sync_error is None
    j.close()

    path.write_text(
        '{"candidate": 0, "fold": 0}\nGARBAGE\n{"candidate": 1, "fold": 0}\n'
    )
    with pytest.warns(UserWarning, match=r"skipped 1 garbled line\(s\) \(line 2\)"):
        assert len(jnl.read_journal(path)) == 2
