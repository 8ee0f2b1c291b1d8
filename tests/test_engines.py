"""Engines forked by runtime.engines: shared imports, no nanny, own RNG streams."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from runtime import cluster as cl
from runtime.engines import CMDLINE_MARK
from tests.conftest import REPO

pytestmark = pytest.mark.cluster


def test_local_engines_are_forked_by_the_launcher_and_share_their_imports(
    local_cluster,
):
    cfg, client = local_cluster

    def who():
        import os

        import numpy as np

        return os.getpid(), float(np.random.random_sample())

    answers = client[:].apply_sync(who)
    pids = [pid for pid, _ in answers]
    assert sorted(pids) == sorted(cl.local_engine_pids(cfg))
    for pid in pids:
        proc = psutil.Process(pid)
        assert CMDLINE_MARK in " ".join(proc.cmdline())
        # No per-engine nanny process: the heartbeat notices a lost engine.
        assert proc.children() == []
        mem = proc.memory_full_info()
        # Forked after numpy/scikit-learn/ipykernel were imported, an engine
        # keeps most of its pages shared with its siblings; an engine started
        # on its own has about two thirds of them private.
        assert mem.uss < 0.5 * mem.rss, mem
    # numpy's global RNG is reseeded in each fork, not copied.
    assert len({draw for _, draw in answers}) == len(answers)


def _launcher(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "runtime.engines", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_launcher_rejects_a_bad_engine_count():
    proc = _launcher("--n", "0", "--", "--file=/nonexistent.json")
    assert proc.returncode == 2
    assert "--n: expected a positive integer, got 0" in proc.stderr


def test_launcher_reports_engines_that_exit_at_once(tmp_path):
    log = tmp_path / "engines.log"
    pids = tmp_path / "engines.pids"
    proc = _launcher(
        "--n=2",
        f"--pids-file={pids}",
        f"--log={log}",
        "--",
        "--file=/nonexistent.json",
        "--log-level=WARNING",  # not a level ipengine knows: it exits at once
    )
    assert proc.returncode == 1
    assert "2 of 2 engines exited at once" in proc.stderr
    assert str(log) in proc.stderr
    assert "log_level" in log.read_text()
    assert len(pids.read_text().split()) == 2


def test_launcher_refuses_an_unwritable_log_before_forking(tmp_path):
    proc = _launcher("--n=1", f"--log={tmp_path}/no/such/dir/engines.log", "--")
    assert proc.returncode == 2
    assert "--log" in proc.stderr and "No such file or directory" in proc.stderr
