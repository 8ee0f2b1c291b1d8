"""Safe on a real network, never hangs: a dead controller, two drivers of one run, a hung fit, a full disk.

Each test starts its own local cluster (its own ports and state) through
`invoke cluster.start`, breaks something for real (SIGKILL, a fit that
never returns, a tmpfs that fills up) and checks that the driver stops
with one message and a run that resumes to GridSearchCV's results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fleetcv.dispatch import cluster as cl
from fleetcv.spec import load_hosts
from tests.conftest import (
    invoke,
    pid_alive,
    popen_invoke,
    stop_started,
    write_local_hosts,
)

pytestmark = pytest.mark.cluster

PORTS = [30400, 30439]


def wait_lines(proc, journal: Path, lines: int, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not journal.exists() or len(journal.read_text().splitlines()) < lines:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the journal did not grow"
        time.sleep(0.1)


def assert_equal_to_reference(run_dir: Path, reference) -> None:
    records = [
        json.loads(line)
        for line in (run_dir / "journal.jsonl").read_text().splitlines()
    ]
    ok = Counter((r["candidate"], r["fold"]) for r in records if r["status"] == "ok")
    assert len(ok) == 100 and set(ok.values()) == {1}, "every pair exactly once"
    res = json.loads((run_dir / "results.json").read_text())
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_allclose(
            res[key], reference.cv_results_[key], rtol=0, atol=1e-12, err_msg=key
        )


@pytest.fixture
def hosts(tmp_path):
    path = write_local_hosts(tmp_path / "hosts.yml", tmp_path, ports=PORTS)
    yield str(path)
    # stop() also ends what a killed controller left (its schedulers hold
    # the ports the next test's controller binds).
    stop_started(load_hosts(path))


def test_a_killed_controller_stops_the_driver_and_the_run_resumes(
    hosts, tmp_path, sklearn_reference
):
    invoke("cluster.start", "--hosts-file", hosts)
    run_dir = tmp_path / "runs" / "ctl"
    search = popen_invoke(
        "search", "--hosts-file", hosts, "--run-dir", str(run_dir), "--no-progress"
    )
    wait_lines(search, run_dir / "journal.jsonl", 10)
    pid = cl._from_file(load_hosts(hosts)).controller.pid
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    out, err = search.communicate(timeout=120)
    took = time.monotonic() - killed
    assert search.returncode == 1, out + err
    assert took < 30, f"the driver took {took:.0f} s to notice the dead controller"
    assert f"the controller (pid {pid}) is gone" in err, err
    assert f"Resume with: invoke search --resume {run_dir}" in err, err
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "aborted"

    # A new cluster; the resume runs only what is missing.
    invoke("cluster.start", "--hosts-file", hosts)
    done = len((run_dir / "journal.jsonl").read_text().splitlines())
    out = invoke(
        "search", "--resume", str(run_dir), "--hosts-file", hosts, "--no-progress"
    ).stdout
    assert f"({done} already in the journal)" in out, out
    assert_equal_to_reference(run_dir, sklearn_reference)
    invoke("cluster.stop", "--hosts-file", hosts)


def test_a_second_driver_of_a_run_is_refused(hosts, tmp_path, sklearn_reference):
    invoke("cluster.start", "--hosts-file", hosts)
    run_dir = tmp_path / "runs" / "twice"
    first = popen_invoke(
        "search", "--hosts-file", hosts, "--run-dir", str(run_dir), "--no-progress"
    )
    wait_lines(first, run_dir / "journal.jsonl", 3)
    first.kill()  # a driver that died: its run is resumed...
    first.communicate()
    resume = popen_invoke(
        "search", "--resume", str(run_dir), "--hosts-file", hosts, "--no-progress"
    )
    wait_lines(resume, run_dir / "journal.jsonl", 8)
    # ...and resumed again while the first resume runs.
    meta_before = (run_dir / "meta.json").read_bytes()
    second = invoke(
        "search", "--resume", str(run_dir), "--hosts-file", hosts, check=False
    )
    assert second.returncode == 2, second.stdout + second.stderr
    # The driver: `invoke` itself, or the warm driver's child running its command.
    holder = int((run_dir / "run.lock").read_text())
    assert pid_alive(holder) and resume.poll() is None
    assert f"another driver (pid {holder}) is running this run" in second.stderr, (
        second.stderr
    )
    assert (run_dir / "meta.json").read_bytes() == meta_before
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, out + err
    assert_equal_to_reference(run_dir, sklearn_reference)
    invoke("cluster.stop", "--hosts-file", hosts)
    assert not pid_alive(resume.pid)


SLEEPY = '''
import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class Sleepy(ClassifierMixin, BaseEstimator):
    """Predicts the most frequent class; its fit sleeps `seconds` (< 0: for ever)."""

    def __init__(self, seconds=0.0):
        self.seconds = seconds

    def fit(self, X, y):
        time.sleep(10**6 if self.seconds < 0 else self.seconds)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.top_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.top_)
'''


def test_a_fit_that_never_returns_times_out_and_its_engine_is_replaced(hosts, tmp_path):
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    spec = tmp_path / "sleepy.yml"
    spec.write_text(
        "name: sleepy\n"
        "code: [sleepy.py]\n"
        "estimator: {class: sleepy.Sleepy}\n"
        "params: {seconds: [0.0, -1.0, 0.01]}\n"
        "data: {loader: sklearn.datasets.load_iris}\n"
        "cv: {kind: kfold, n_splits: 3, random_state: 0}\n"
        "task_timeout: 5\n"
    )
    invoke("cluster.start", "--hosts-file", hosts)
    cfg = load_hosts(hosts)
    before = set(cl.local_engine_pids(cfg))
    run_dir = tmp_path / "runs" / "sleepy"
    proc = invoke(
        "search",
        "--spec",
        str(spec),
        "--hosts-file",
        hosts,
        "--run-dir",
        str(run_dir),
        "--no-progress",
        timeout=300,
    )
    records = [
        json.loads(line)
        for line in (run_dir / "journal.jsonl").read_text().splitlines()
    ]
    assert Counter((r["candidate"], r["fold"]) for r in records) == {
        (c, k): 1 for c in range(3) for k in range(3)
    }, "every pair recorded exactly once, none retried"
    timed_out = [r for r in records if r["candidate"] == 1]
    assert {r["status"] for r in timed_out} == {"fit_failed"}
    assert all(
        r["error"].startswith("timed out after 5 s (task_timeout)") for r in timed_out
    )
    assert {r["status"] for r in records if r["candidate"] != 1} == {"ok"}
    assert proc.stderr.count("ran past its 5 s timeout") == 3, proc.stderr
    assert "3 failed fits" in proc.stdout and "3 timed out fits" in proc.stdout
    # The hung engines are gone, replaced: as many engines run as before.
    after = set(cl.local_engine_pids(cfg))
    killed = {r["pid"] for r in timed_out}
    # (the third hung fit may run on a replacement engine, replaced in turn)
    assert killed & before and not any(pid_alive(p) for p in killed)
    alive = [p for p in after if pid_alive(p)]
    assert len(alive) == len(before) and not killed & set(alive)
    res = json.loads((run_dir / "results.json").read_text())
    assert np.isnan(res["mean_test_score"][1])
    # The other candidates score as scikit-learn scores a constant predictor.
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier
    from sklearn.model_selection import KFold, cross_val_score

    X, y = load_iris(return_X_y=True)
    ref = cross_val_score(
        DummyClassifier(), X, y, cv=KFold(3, shuffle=True, random_state=0)
    ).mean()
    assert (
        res["mean_test_score"][0]
        == res["mean_test_score"][2]
        == pytest.approx(ref, abs=1e-12)
    )
    invoke("cluster.stop", "--hosts-file", hosts)


def test_cluster_start_fails_when_no_engine_starts_and_leaves_nothing(tmp_path):
    import yaml

    path = tmp_path / "ghosts.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "controller": {
                    "ip": "127.0.0.1",
                    "ports": PORTS,
                    "tunnel": True,
                    "state_dir": str(tmp_path / "state"),
                },
                "known_hosts": str(tmp_path / "known_hosts"),
                "hosts": [
                    {"name": "ghost1", "address": "root@127.0.0.1:1"},
                    {"name": "ghost2", "address": "root@127.0.0.1:2"},
                ],
            }
        )
    )
    proc = invoke("cluster.start", "--hosts-file", str(path), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: no engine started on any host, so nothing is left running" in (
        proc.stderr
    ), proc.stderr
    assert "ghost1: unreachable: cannot connect to root@127.0.0.1:1" in proc.stderr
    assert "ghost2: unreachable: cannot connect to root@127.0.0.1:2" in proc.stderr
    cfg = load_hosts(path)
    assert not cl.is_running(cfg)
    pid = cl.recorded_controller_pid(cfg)
    assert pid and not pid_alive(pid)
    status = invoke("cluster.status", "--hosts-file", str(path), check=False)
    assert "Traceback" not in status.stderr and "TimeoutError" not in status.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs at tmp_path/small (unmounted after the test)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        if os.environ.get("FLEETCV_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"cannot mount a tmpfs: {proc.stderr}")
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` up to its last byte with one file; return it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):  # then the last bytes one at a time
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_the_search_and_loses_nothing_journaled(
    hosts, small_disk, sklearn_reference
):
    invoke("cluster.start", "--hosts-file", hosts)
    run_dir = small_disk / "run"
    search = popen_invoke(
        "search", "--hosts-file", hosts, "--run-dir", str(run_dir), "--no-progress"
    )
    journal = run_dir / "journal.jsonl"
    wait_lines(search, journal, 5)
    filler = fill(small_disk)
    out, err = search.communicate(timeout=300)
    assert search.returncode == 1, out + err
    assert f"error: cannot write the journal {journal}: No space left on device" in (
        err
    ), err
    assert f"Resume with: invoke search --resume {run_dir}" in err
    assert "Traceback" not in err
    kept = [ln for ln in journal.read_text().splitlines() if ln.endswith("}")]
    assert len(kept) >= 5
    filler.unlink()
    out = invoke(
        "search", "--resume", str(run_dir), "--hosts-file", hosts, "--no-progress"
    ).stdout
    # Every record journaled before the disk filled is still there, unchanged.
    lines = journal.read_text().splitlines()
    assert all(line in lines for line in kept)
    assert_equal_to_reference(run_dir, sklearn_reference)
    invoke("cluster.stop", "--hosts-file", hosts)
