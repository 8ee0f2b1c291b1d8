"""Faults, with real processes: a dead controller, two drivers of one run, a hung fit, a full disk.

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

from runtime.dispatch import cluster as cl
from runtime.spec import load_hosts
from tests.conftest import REPO, pid_alive, run_invoke, user_env, write_local_hosts

pytestmark = pytest.mark.cluster

PORTS = [30400, 30439]


def invoke(*args, timeout=600, check=True):
    proc = run_invoke(*args, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f"invoke {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def popen_invoke(*args):
    return subprocess.Popen(
        ["invoke", *args],
        cwd=REPO,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    cfg = load_hosts(path)
    if cl.is_running(cfg):
        cl.stop(cfg)
    else:
        cl.stop_local_engines(cfg)


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
    assert f"another driver (pid {resume.pid}) is running this run" in second.stderr, (
        second.stderr
    )
    assert (run_dir / "meta.json").read_bytes() == meta_before
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, out + err
    assert_equal_to_reference(run_dir, sklearn_reference)
    invoke("cluster.stop", "--hosts-file", hosts)
    assert not pid_alive(resume.pid)
