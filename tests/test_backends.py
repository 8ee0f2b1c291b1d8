"""One contract test (fleetcv.backends.base) run on every backend, with real engines.

The local backend on this machine; the SSH backend on a namespace host
(real sshd, real rsync, the host's own disk). Each is driven only through
the contract's methods, and what they claim is checked from outside: the
controller's registered engines, the host's files, its processes.
"""

from __future__ import annotations

import os
import time

import pytest

from fleetcv.backends import BACKENDS, Backend, backend
from fleetcv.dispatch import cluster as cl
from fleetcv.spec import load_hosts
from fleetcv.spec.hosts import HOST_BACKENDS
from runtime.digestdir import SUMS, publish, sha256_file, write_sums
from tests.conftest import (
    local_hosts,
    require_testcluster,
    write_namespace_hosts,
)

PORTS_LOCAL = [30800, 30839]
PORTS_SSH = [30840, 30879]
PREFIX, SUBNET = "fbk", "10.205.0"
#: Seconds for engines to register or go.
WAIT = 120


def test_hosts_yml_names_exactly_the_registered_backends():
    assert set(HOST_BACKENDS) == set(BACKENDS)
    for name in BACKENDS:
        assert isinstance(backend(name), Backend), name


@pytest.fixture(scope="module", params=["local", "ssh"])
def target(request, tmp_path_factory):
    """(cfg, backend, host) with a running controller and no engine yet."""
    tmp = tmp_path_factory.mktemp(f"backend-{request.param}")
    state = None
    if request.param == "local":
        cfg = local_hosts(tmp, engines=1, ports=PORTS_LOCAL)
    else:
        require_testcluster()
        from fleetcv.devtools import testcluster

        state = testcluster.up(1, tmp / "tc", prefix=PREFIX, subnet=SUBNET)
        cfg = load_hosts(
            write_namespace_hosts(tmp / "hosts.yml", state, tmp, PORTS_SSH)
        )
    (host,) = cfg.hosts
    assert host.backend == request.param
    cl.start(cfg, n_local=0)  # the controller alone: engines are the backend's
    try:
        yield cfg, backend(host.backend), host, tmp
    finally:
        try:
            backend(host.backend).stop_engines(cfg, [host])
        finally:
            cl.stop(cfg)
            if state is not None:
                from fleetcv.devtools import testcluster

                testcluster.down(state)


def _until(cond, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _engine_pids(client) -> list[int] | None:
    """The pids of the registered engines; None while one of them is dead but still registered."""
    try:
        return sorted(client[:].apply_async(os.getpid).get(timeout=10))
    except Exception:  # noqa: BLE001 - an engine dying or dropped: ask again
        return None


def _folder(tmp, text: str):
    """A digest-named folder with one file and its SHA256SUMS (as folds and code are)."""

    def fill(d):
        (d / "a.txt").write_text(text)
        write_sums(d, [(sha256_file(d / "a.txt"), "a.txt")])

    return publish(tmp / "staged" / f"d{abs(hash(text)) % 10**8}", fill)


@pytest.mark.cluster
@pytest.mark.multihost
def test_the_backend_contract(target):
    cfg, b, host, tmp = target
    one = [host]

    res = b.install(cfg, one)
    assert set(res.ok) == {host.name} and not res.failed, res

    # start_engines: engines that register with the controller, counted.
    res = b.start_engines(cfg, one, count=1)
    assert res.ok == {host.name: 1} and not res.failed, res
    client = cl.connect(cfg)
    try:
        _until(lambda: len(client.ids) == 1, "the engine to register")
        assert b.engine_status(cfg, one).ok == {host.name: 1}
        (pid,) = _until(lambda: _engine_pids(client), "the engine's pid")

        # replace_engine: that pid goes, another engine takes its place.
        line = b.replace_engine(cfg, host, pid)
        assert f"engine pid {pid} stopped, a new engine started" in line, line
        _until(
            lambda: len(client.ids) == 1 and _engine_pids(client) not in (None, [pid]),
            "the replacement to register",
        )
        gone = b.run_command(
            cfg, f"kill -0 {pid} 2>/dev/null && echo alive || echo gone", one
        )
        assert gone.ok == {host.name: "gone"}, gone
        assert b.engine_status(cfg, one).ok == {host.name: 1}

        # push_run_files: present and verified under the workdir, not sent twice,
        # a damaged copy replaced.
        folder = _folder(tmp, "contract\n")
        res = b.push_run_files(cfg, folder, "contract", one)
        assert set(res.ok) == {host.name} and not res.failed, res
        remote = f"{host.workdir_path.rstrip('/')}/contract/{folder.name}"
        cat = f"cat {remote}/a.txt && cd {remote} && sha256sum --quiet -c {SUMS} && echo ok"
        assert b.run_command(cfg, cat, one).ok == {host.name: "contract\nok"}
        again = b.push_run_files(cfg, folder, "contract", one)
        assert "already there" in again.ok[host.name], again
        b.run_command(
            cfg, f"chmod u+w {remote}/a.txt; echo damaged > {remote}/a.txt", one
        )
        fixed = b.push_run_files(cfg, folder, "contract", one)
        assert "already there" not in fixed.ok[host.name], fixed
        assert b.run_command(cfg, cat, one).ok == {host.name: "contract\nok"}

        # run_command: a non-zero exit is that host's failure, with its output.
        bad = b.run_command(cfg, "echo broken; exit 3", one)
        assert not bad.ok and bad.failed[host.name].startswith("exit 3: broken"), bad

        # stop_engines: they go, and a second stop is harmless.
        res = b.stop_engines(cfg, one)
        assert not res.failed and res.ok[host.name].startswith("1 engines stopped"), res
        _until(lambda: len(client.ids) == 0, "the engine to unregister", timeout=60)
        assert b.engine_status(cfg, one).ok == {host.name: 0}
        res = b.stop_engines(cfg, one)
        assert not res.failed and res.ok[host.name].startswith("0 engines stopped"), res
    finally:
        client.close()


@pytest.mark.parametrize(
    ("host", "match"),
    [
        (
            {"name": "n1", "address": "u@10.0.0.2", "backend": "kubernetes"},
            r"hosts\[0\]\.backend: 'kubernetes' is not a backend fleetcv has\. "
            r"Fix: write backend: local or backend: ssh",
        ),
        (
            {"name": "n1", "address": "u@10.0.0.2", "backend": "local"},
            r"hosts\[0\]\.backend: backend local on a host with local: false\. "
            r"Fix: write backend: ssh",
        ),
        (
            {"name": "me", "local": True, "backend": "ssh"},
            r"hosts\[0\]\.backend: backend ssh on a host with local: true",
        ),
    ],
)
def test_a_bad_backend_is_refused_naming_the_key_and_the_ones_there_are(host, match):
    from fleetcv.errors import ConfigError
    from fleetcv.spec import parse_hosts

    data = {"controller": {"ip": "10.0.0.1"}, "hosts": [host]}
    with pytest.raises(ConfigError, match=match):
        parse_hosts(data, "cluster.yml")
