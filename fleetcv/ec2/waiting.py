"""The waits of a launch and a teardown, each with a timeout and a progress bar.

Runs on the laptop; polls the EC2 API until instances run or terminate, and
knocks on each new host's SSH port (the only packets fleetcv.ec2 sends to a
host, and only a banner is read). Bars go to stderr.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from fleetcv.ec2.api import Ec2, Ec2Error, pages

#: States from which an instance that has not run yet never will.
_ENDED = ("shutting-down", "terminated", "stopping", "stopped")


def default_wait_reachable(host: str, port: int = 22, timeout: float = 300.0) -> None:
    """Wait until ``host:port`` answers with an SSH banner.

    A TCP connection alone is not enough: sshd accepts connections a little
    before it can serve them while cloud-init is still writing keys.

    Raises
    ------
    Ec2Error
        If it does not answer within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.settimeout(5)
                if s.recv(4) == b"SSH-":
                    return
        except OSError as exc:
            last = exc
        time.sleep(3)
    raise Ec2Error(
        f"{host}:{port}: no SSH server answered within {timeout:.0f} s ({last})"
    )


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar over `total` instances on stderr (a silent one if not `enabled`)."""
    # tqdm is imported on first use: `ec2.status` and `ec2.prices` show no bar.
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="instance",
        disable=not enabled,
        file=sys.stderr,
        leave=True,
    )


def wait_running(
    ec2: Ec2,
    instance_ids: list[str],
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
) -> list[dict]:
    """Poll until every instance runs; return their descriptions.

    Raises
    ------
    Ec2Error
        If one ends (a spot instance reclaimed at once, a bad AMI) or the wait
        times out; the instances stay tagged, so `down` still finds them.
    """
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    with progress_bar(len(instance_ids), "running", progress) as bar:
        while True:
            pending = [i for i in instance_ids if i not in done]
            for inst in _describe_new(ec2, pending):
                state = inst["State"]["Name"]
                if state == "running":
                    done[inst["InstanceId"]] = inst
                    bar.update(1)
                elif state in _ENDED:
                    reason = inst.get("StateReason", {}).get("Message", state)
                    raise Ec2Error(
                        f"{inst['InstanceId']} ended before it ran ({reason}). "
                        "Fix: see invoke ec2.status; invoke ec2.down removes the rest"
                    )
            if len(done) == len(instance_ids):
                return [done[i] for i in instance_ids]
            if time.monotonic() > deadline:
                raise Ec2Error(
                    f"{', '.join(i for i in instance_ids if i not in done)} not running after "
                    f"{timeout:.0f} s. Fix: see invoke ec2.status; invoke ec2.down removes them"
                )
            time.sleep(poll)


def _describe_new(ec2: Ec2, instance_ids: list[str]) -> list[dict]:
    """The descriptions of just-launched instances (none that EC2 does not show yet)."""
    insts: list[dict] = []
    try:
        for res in pages(
            ec2, "describe_instances", "Reservations", InstanceIds=instance_ids
        ):
            insts.extend(res.get("Instances", []))
    except Ec2Error as exc:
        # Just-launched ids may not be visible yet (eventual consistency).
        if exc.code != "InvalidInstanceID.NotFound":
            raise
    return insts


def wait_ssh(
    entries: list[dict],
    wait_reachable: Callable[[str], Any] | None,
    progress: bool = True,
) -> list[str]:
    """Ask `wait_reachable` about every host entry's address; return the failures.

    One ``"<name>: <why>"`` per host that did not answer; none if
    `wait_reachable` is None (no wait).
    """
    unreachable = []
    with progress_bar(
        len(entries), "ssh", progress and wait_reachable is not None
    ) as bar:
        for entry in entries if wait_reachable is not None else []:
            try:
                wait_reachable(entry["address"].split("@", 1)[1])
            except Exception as exc:  # noqa: BLE001 - one host's failure must not hide the others
                unreachable.append(f"{entry['name']}: {exc}")
            bar.update(1)
    return unreachable


def wait_terminated(
    ec2: Ec2, ids: list[str], timeout: float, poll: float, progress: bool
) -> None:
    """Poll until every instance is terminated.

    Raises
    ------
    Ec2Error
        If some are not after `timeout` seconds; `down` again finishes.
    """
    deadline = time.monotonic() + timeout
    with progress_bar(len(ids), "terminated", progress) as bar:
        done: set[str] = set()
        while True:
            for res in pages(
                ec2, "describe_instances", "Reservations", InstanceIds=ids
            ):
                for inst in res.get("Instances", []):
                    if (
                        inst["State"]["Name"] == "terminated"
                        and inst["InstanceId"] not in done
                    ):
                        done.add(inst["InstanceId"])
                        bar.update(1)
            if len(done) == len(ids):
                return
            if time.monotonic() > deadline:
                raise Ec2Error(
                    f"{', '.join(sorted(set(ids) - done))} not terminated after {timeout:.0f} s. "
                    "Fix: run invoke ec2.down again to finish"
                )
            time.sleep(poll)
