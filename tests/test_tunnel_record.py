"""The record of a host's SSH tunnel: its pid, told from a newcomer by when it started."""

from __future__ import annotations

import subprocess

import pytest

from fleetcv.backends import ssh
from fleetcv.spec import parse_hosts


@pytest.fixture
def recorded(tmp_path):
    """A cluster config whose one remote host has a tunnel record, and a live process."""
    cfg = parse_hosts(
        {
            "controller": {
                "ip": "127.0.0.1",
                "tunnel": True,
                "state_dir": str(tmp_path),
            },
            "hosts": [{"name": "node1", "address": "ubuntu@10.0.0.11", "engines": 1}],
        },
        "hosts.yml",
    )
    proc = subprocess.Popen(["sleep", "60"])
    host = cfg.remote_hosts[0]
    pid_file, _ = ssh._tunnel_files(host, cfg)
    pid_file.parent.mkdir(parents=True)
    try:
        yield cfg, host, proc, pid_file
    finally:
        proc.kill()
        proc.wait(10)


def test_a_recorded_tunnel_is_found_by_its_pid_and_start(recorded):
    cfg, host, proc, pid_file = recorded
    pid_file.write_text(f"{proc.pid} {ssh._started(proc.pid)}\n")
    assert ssh.tunnel_pid(host, cfg) == proc.pid
    # The mark is the start in clock ticks since boot, which no adjustment of
    # the wall clock moves (psutil's create_time moves with the boot time).
    assert ssh._started(proc.pid).startswith("ticks:")


def test_another_process_under_a_recorded_pid_is_not_the_tunnel(recorded):
    cfg, host, proc, pid_file = recorded
    mark = ssh._started(proc.pid)
    ticks = int(mark.split(":")[1])
    # The same pid, started a tick later: pid reuse, not the recorded ssh.
    pid_file.write_text(f"{proc.pid} ticks:{ticks + 1}\n")
    assert ssh.tunnel_pid(host, cfg) is None


def test_a_record_of_a_process_that_ended_names_no_tunnel(recorded):
    cfg, host, proc, pid_file = recorded
    pid_file.write_text(f"{proc.pid} {ssh._started(proc.pid)}\n")
    proc.kill()
    proc.wait(10)
    assert ssh.tunnel_pid(host, cfg) is None
    # Nothing to close, and the stale record goes.
    assert ssh.close_tunnel(host, cfg) is False
    assert not pid_file.exists()
