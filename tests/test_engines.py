"""Engines forked by runtime.launcher: shared imports, no nanny, own RNG streams."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from fleetcv.dispatch import cluster as cl
from fleetcv.spec import parse_hosts
from runtime.launcher import CMDLINE_MARK, _stop_survivors
from tests.conftest import (
    REPO,
    local_hosts_data,
    pid_alive,
    run_invoke,
    wait_gone,
    write_local_hosts,
)

#: Below the kernel's ephemeral ports; no other test module uses them.
PORTS_SETTINGS = [31240, 31279]

pytestmark = pytest.mark.cluster


def test_local_engines_are_forked_by_the_launcher_and_share_their_imports(
    local_cluster,
):
    cfg, client = local_cluster

    def who():

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
        [sys.executable, "-m", "runtime.launcher", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_launcher_rejects_a_bad_engine_count():
    proc = _launcher("--n", "0", "--log=/dev/null", "--", "--file=/nonexistent.json")
    assert proc.returncode == 2
    assert "--n: expected a positive integer, got 0" in proc.stderr


@pytest.mark.parametrize("flag", ["--log", "--pids-file"])
def test_launcher_refuses_a_path_it_cannot_write_before_forking(tmp_path, flag):
    bad = tmp_path / "missing" / "engines.out"
    args = ["--n=1", f"{flag}={bad}"]
    if flag != "--log":
        args.append(f"--log={tmp_path / 'engines.log'}")
    proc = _launcher(*args, "--", "--file=/nonexistent.json")
    assert proc.returncode == 2
    assert (
        f"{flag} {bad}: No such file or directory. Fix: give a writable path"
        in proc.stderr
    ), proc.stderr


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


def test_a_failed_launch_stops_the_engines_that_did_start():
    # All or nothing per host: the caller reports the host failed and runs
    # the search without it. One child "died at once"; the others (one of
    # which ignores SIGTERM) must be gone when _stop_survivors returns.
    died = subprocess.Popen(["sleep", "60"])
    calm = subprocess.Popen(["sleep", "60"])
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"])
    time.sleep(0.3)  # let sh install its trap before the SIGTERM comes
    died.kill()
    _, status = os.waitpid(died.pid, 0)
    dead = {died.pid: os.waitstatus_to_exitcode(status)}
    stopped = _stop_survivors([died.pid, calm.pid, stubborn.pid], dead, grace=0.5)
    assert stopped == 2
    assert not pid_alive(calm.pid) and not pid_alive(stubborn.pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(stubborn.pid, os.WNOHANG)  # reaped, not left a zombie


#: cgroup v1's pids controller: a real limit on forks, even for root.
PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


@pytest.mark.skipif(
    not os.access(PIDS_CGROUP, os.W_OK),
    reason="needs a writable cgroup v1 pids controller (root)",
)
def test_a_fork_that_fails_stops_the_engines_already_forked(tmp_path):
    # A real fork failure: the launcher runs in a cgroup that allows two
    # tasks, itself and its first engine, so the second fork gets EAGAIN.
    cg = PIDS_CGROUP / f"fleetcv-test-{os.getpid()}"
    cg.mkdir()
    try:
        (cg / "pids.max").write_text("2")
        pids = tmp_path / "engines.pids"
        proc = subprocess.run(
            [
                "sh",
                "-c",
                f'echo $$ > {cg}/cgroup.procs && exec "$0" "$@"',
                sys.executable,
                "-m",
                "runtime.launcher",
                "--n=3",
                f"--pids-file={pids}",
                f"--log={tmp_path / 'engines.log'}",
                "--",
                "--file=/nonexistent.json",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert (
            "could not fork the engines (Resource temporarily unavailable); any "
            "already started were stopped. Fix: raise this host's process limit"
        ) in proc.stderr
        started = [int(p) for p in pids.read_text().split()]
        assert len(started) == 1, "the first fork went through"
        # Stopped and reaped by the launcher before it exited: not running,
        # and not an orphan (a zombie of init here) either.
        assert not any(psutil.pid_exists(p) for p in started)
    finally:
        deadline = time.monotonic() + 20
        while (cg / "tasks").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        cg.rmdir()


def test_hosts_yml_sets_engine_threads_and_the_heartbeat(tmp_path):
    data = local_hosts_data(
        tmp_path,
        engines=1,
        ports=PORTS_SETTINGS,
        heartbeat_seconds=0.5,
        heartbeat_misses=3,
    )
    data["hosts"][0]["threads"] = 2
    cfg = parse_hosts(data, "<test hosts>")
    info = cl.start(cfg)
    pids = [info["controller_pid"], *cl.local_engine_pids(cfg)]
    try:
        client = cl.connect(cfg)
        try:
            cl.wait_for_engines(client, 1)

            def pools():
                from threadpoolctl import threadpool_info

                return [(p["user_api"], p["num_threads"]) for p in threadpool_info()]

            seen = client[:].apply_sync(pools)[0]
        finally:
            client.close()
        # numpy's BLAS at least; sklearn's OpenMP too where it is loaded.
        assert ("blas", 2) in seen, seen
        assert {n for _, n in seen} == {2}, seen
        ctl = " ".join(psutil.Process(info["controller_pid"]).cmdline())
        assert "--HeartMonitor.period=500" in ctl, ctl
        assert "--HeartMonitor.max_heartmonitor_misses=3" in ctl, ctl
    finally:
        cl.stop(cfg)
        assert not wait_gone(pids)


def test_launcher_refuses_an_unwritable_log_before_forking(tmp_path):
    proc = _launcher("--n=1", f"--log={tmp_path}/no/such/dir/engines.log", "--")
    assert proc.returncode == 2
    assert "--log" in proc.stderr and "No such file or directory" in proc.stderr


def _wheel(tmp_path, name="fleetcv_probe_pkg", version="0.1") -> Path:
    """A minimal pure-Python wheel, written by hand (a wheel is a zip): no build, no network."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fleetcv-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    path = tmp_path / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name_, text in {**files, f"{dist}/RECORD": record}.items():
            z.writestr(name_, text)
    return path


def _hosts_yml_for(cfg, tmp_path) -> Path:
    """A hosts file naming the session cluster's controller (same state folder)."""
    return write_local_hosts(
        tmp_path / "hosts.yml",
        cfg.controller.state_path.parent,
        ports=list(cfg.controller.ports),
    )


def test_cluster_install_makes_a_package_importable_on_running_engines(
    local_cluster, tmp_path
):
    cfg, client = local_cluster
    hosts = _hosts_yml_for(cfg, tmp_path)
    wheel = _wheel(tmp_path)

    def probe():
        import importlib

        importlib.invalidate_caches()
        import fleetcv_probe_pkg

        return fleetcv_probe_pkg.VERSION

    try:
        proc = run_invoke(
            "cluster.install", "--packages", str(wheel), "--hosts-file", str(hosts)
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"[localhost] pip install {wheel}: ok" in proc.stdout
        # Both engines import it without a restart (they share the venv).
        assert client[:].apply_sync(probe) == ["0.1", "0.1"]
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "fleetcv-probe-pkg"],
            check=False,
        )


def test_cluster_install_failure_names_the_host_and_exits_1(local_cluster, tmp_path):
    cfg, _ = local_cluster
    hosts = _hosts_yml_for(cfg, tmp_path)
    missing = tmp_path / "no_such_pkg-1.0-py3-none-any.whl"
    proc = run_invoke(
        "cluster.install", "--packages", str(missing), "--hosts-file", str(hosts)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"[localhost] pip install {missing}: failed (exit 1)" in proc.stdout
    assert "pip install failed on localhost" in proc.stderr
