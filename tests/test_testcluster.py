"""Tests of the network-namespace SSH test cluster (fleetcv/devtools/testcluster.py).

Real namespaces, real sshd, real ssh and rsync: no mocks.  Needs root; skipped
when the machine cannot host the cluster unless FLEETCV_REQUIRE_CLUSTER=1.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from fleetcv.devtools import testcluster
from runtime.pids import pid_alive

pytestmark = [pytest.mark.cluster, pytest.mark.multihost]

SSH_TIMEOUT = 15
# A second, independent cluster for the teardown test; must not clash with
# the module cluster's names or subnet.
DOWN_PREFIX = "fcvd"
DOWN_SUBNET = "10.203.1"


def _require_cluster() -> None:
    ok, reason = testcluster.available()
    if not ok:
        if os.environ.get("FLEETCV_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"test cluster required but unavailable: {reason}")
        pytest.skip(f"test cluster unavailable: {reason}")


def ssh(state: dict, host: str, command: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["ssh", "-F", state["ssh_config"], host, command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SSH_TIMEOUT,
    )
    if check:
        assert proc.returncode == 0, (command, proc.returncode, proc.stderr)
    return proc.stdout


def ssh_ok(state: dict, host: str, command: str) -> bool:
    proc = subprocess.run(
        ["ssh", "-F", state["ssh_config"], host, command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=SSH_TIMEOUT,
    )
    return proc.returncode == 0


def netns_names() -> set[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def link_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["ip", "link", "show", "dev", name], capture_output=True
        ).returncode
        == 0
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _require_cluster()
    base = tmp_path_factory.mktemp("testcluster")
    state = testcluster.up(3, base)
    try:
        yield state
    finally:
        testcluster.down(state)


def test_state_shape(cluster):
    base = Path(cluster["base_dir"])
    saved = json.loads((base / testcluster.STATE_FILE).read_text())
    assert saved == cluster
    assert stat.S_IMODE((base / testcluster.STATE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(cluster["key"]).stat().st_mode) == 0o600
    assert cluster["bridge"] == "fcvbr0"
    assert [h["name"] for h in cluster["hosts"]] == ["fcv1", "fcv2", "fcv3"]
    for i, host in enumerate(cluster["hosts"], start=1):
        assert host["ip"] == f"10.203.0.{10 + i}"
        assert host["address"] == f"root@10.203.0.{10 + i}"
        assert (host["user"], host["port"]) == ("root", 22)
        assert host["workdir"] == "/srv/fleetcv"
        assert host["key"] == cluster["key"]
        assert Path(host["disk"]).is_dir()
        assert pid_alive(host["sshd_pid"])


def test_each_host_answers_with_its_own_ip(cluster):
    for host in cluster["hosts"]:
        # By the address that goes into hosts.yml (up() already checked the
        # ssh_config names).
        out = ssh(cluster, host["address"], "ip -4 -o addr show")
        addrs = {tok.split("/")[0] for tok in out.split() if tok.count(".") == 3}
        assert addrs == {"127.0.0.1", host["ip"]}


def test_hosts_reach_each_other_and_the_bridge_address(cluster):
    hosts = cluster["hosts"]
    bridge_ip = cluster["bridge_ip"]
    # The bridge address in the root namespace is where the controller will
    # listen; neighbours are probed on their sshd port.
    with socket.socket() as srv:
        srv.bind((bridge_ip, 0))
        srv.listen(len(hosts))
        srv.settimeout(SSH_TIMEOUT)
        port = srv.getsockname()[1]
        for src, dst in zip(hosts, hosts[1:] + hosts[:1], strict=True):
            cmd = (
                f"timeout 3 bash -c 'echo > /dev/tcp/{dst['ip']}/22' && "
                f"timeout 3 bash -c 'echo {src['name']} > /dev/tcp/{bridge_ip}/{port}'"
            )
            assert ssh_ok(cluster, src["name"], cmd), (src["name"], dst["name"])
            conn, (peer_ip, _) = srv.accept()
            with conn:
                assert conn.recv(64).decode().strip() == src["name"]
            assert peer_ip == src["ip"]


def test_disks_are_private(cluster):
    h1, h2, _ = cluster["hosts"]
    name = f"only-on-fcv1-{uuid.uuid4().hex}"
    out = ssh(
        cluster, h1["name"], f"echo hello > /srv/fleetcv/{name} && ls /srv/fleetcv"
    )
    assert name in out.split()
    assert (Path(h1["disk"]) / name).read_text().strip() == "hello"
    assert not ssh_ok(cluster, h2["name"], f"test -e /srv/fleetcv/{name}")
    assert not (Path(h2["disk"]) / name).exists()
    assert not (Path("/srv/fleetcv") / name).exists()


def test_rsync_lands_on_one_host_only(cluster, tmp_path):
    src = tmp_path / "payload"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(4096))
    rsh = f"ssh -F {shlex.quote(cluster['ssh_config'])}"
    subprocess.run(
        ["rsync", "-a", "-e", rsh, f"{src}/", "fcv2:/srv/fleetcv/x/"],
        check=True,
        capture_output=True,
        timeout=SSH_TIMEOUT,
    )
    h1, h2, h3 = cluster["hosts"]
    dest = Path(h2["disk"]) / "x"
    assert (dest / "a.txt").read_text() == "alpha\n"
    assert (dest / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    listing = ssh(cluster, "fcv2", "cd /srv/fleetcv/x && find . -type f | sort")
    assert listing.split() == ["./a.txt", "./sub/b.bin"]
    for other in (h1, h3):
        assert not (Path(other["disk"]) / "x").exists()
        assert not ssh_ok(cluster, other["name"], "test -e /srv/fleetcv/x")
    assert not Path("/srv/fleetcv/x/a.txt").exists()


def test_hosts_yml(cluster):
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(testcluster.hosts_yml(cluster))
    assert doc["controller"] == {"ip": "10.203.0.1", "ports": [55000, 55039]}
    assert [h["name"] for h in doc["hosts"]] == ["fcv1", "fcv2", "fcv3"]
    for entry, host in zip(doc["hosts"], cluster["hosts"], strict=True):
        assert entry == {
            "name": host["name"],
            "address": host["address"],
            "engines": 1,
            "workdir": "/srv/fleetcv",
            "python": "python3",
            "ssh_key": cluster["key"],
        }
    other = yaml.safe_load(testcluster.hosts_yml(cluster, controller_ip="10.9.9.9"))
    assert other["controller"]["ip"] == "10.9.9.9"


def test_up_refuses_names_it_does_not_own(tmp_path):
    _require_cluster()
    bridge = "fcvxbr0"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        with pytest.raises(RuntimeError, match="already in use"):
            testcluster.up(1, tmp_path, prefix="fcvx", subnet="10.203.2")
        assert link_exists(bridge)  # not ours: left alone
        assert "fcvx1" not in netns_names()
    finally:
        subprocess.run(["ip", "link", "delete", bridge], check=False)


def test_up_reclaims_what_a_killed_run_left_and_spares_what_is_in_use(tmp_path):
    """A run killed before teardown leaves namespaces with no process in them:
    the next up() with that prefix deletes them; a namespace in which a
    process still runs is refused, naming its pid."""
    _require_cluster()
    prefix, subnet = "fcvr", "10.203.3"
    state = testcluster.up(2, tmp_path / "first", prefix=prefix, subnet=subnet)
    names = [h["name"] for h in state["hosts"]]
    # What a SIGKILLed test leaves: sshds dead, state file gone, names kept.
    for host in state["hosts"]:
        os.kill(host["sshd_pid"], 9)
    deadline = time.monotonic() + 10
    while any(pid_alive(h["sshd_pid"]) for h in state["hosts"]):
        assert time.monotonic() < deadline, "sshd did not die"
        time.sleep(0.1)
    (tmp_path / "first" / testcluster.STATE_FILE).unlink()
    assert set(names) <= netns_names() and link_exists(state["bridge"])
    again = testcluster.up(2, tmp_path / "second", prefix=prefix, subnet=subnet)
    try:
        assert ssh(again, names[0], "hostname -I").split() == [again["hosts"][0]["ip"]]
        # Now one namespace holds a live process the state does not know.
        sleeper = subprocess.Popen(["ip", "netns", "exec", names[1], "sleep", "60"])
        (tmp_path / "second" / testcluster.STATE_FILE).rename(tmp_path / "kept.json")
        try:
            with pytest.raises(
                RuntimeError, match=rf"netns {names[1]} \(pids [0-9 ]*{sleeper.pid}"
            ):
                testcluster.up(2, tmp_path / "third", prefix=prefix, subnet=subnet)
            assert names[1] in netns_names()  # in use: left alone
        finally:
            sleeper.kill()
            sleeper.wait(timeout=10)
            (tmp_path / "kept.json").rename(
                tmp_path / "second" / testcluster.STATE_FILE
            )
    finally:
        testcluster.down(tmp_path / "second")
    assert not set(names) & netns_names()


def test_down_kills_everything_and_is_idempotent(tmp_path):
    _require_cluster()
    state = testcluster.up(2, tmp_path, prefix=DOWN_PREFIX, subnet=DOWN_SUBNET)
    try:
        names = [h["name"] for h in state["hosts"]]
        assert set(names) <= netns_names()
        sshd_pids = [h["sshd_pid"] for h in state["hosts"]]
        # A detached background process, like a remote ipyparallel engine.
        out = ssh(state, names[0], "setsid nohup sleep 300 >/dev/null 2>&1 & echo $!")
        sleeper = int(out.strip())
        assert pid_alive(sleeper)
    finally:
        testcluster.down(state)
    assert not pid_alive(sleeper)
    assert not any(pid_alive(pid) for pid in sshd_pids)
    assert not set(names) & netns_names()
    assert not link_exists(state["bridge"])
    assert not any(link_exists(h["veth"]) for h in state["hosts"])
    assert not (tmp_path / testcluster.STATE_FILE).exists()
    # Idempotent, by state and by base dir.
    testcluster.down(state)
    testcluster.down(tmp_path)
    # The names are free again at once (the kernel removes veths of deleted
    # namespaces asynchronously; down waits for that).
    again = testcluster.up(2, tmp_path, prefix=DOWN_PREFIX, subnet=DOWN_SUBNET)
    try:
        assert ssh(again, names[1], "hostname -I").split() == [again["hosts"][1]["ip"]]
    finally:
        testcluster.down(tmp_path)
    assert not set(names) & netns_names()
    assert not link_exists(again["bridge"])
