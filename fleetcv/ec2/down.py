"""Tearing a cluster down: fetch first, terminate, delete its group, forget its hosts.

Runs on the laptop; talks only to the EC2 API (the fetch itself is the
caller's: `ec2.down` rsyncs the run directories back with fabfile.fetch_dirs). Only resources
tagged ``fleetcv:cluster=<cluster>`` are touched, and running `down` again
after a failure finishes the job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetcv.ec2.api import Ec2, Ec2Error, call, connect
from fleetcv.ec2.hostsfile import (
    drop_instances,
    ec2_entries,
    host_entry,
    hosts_path,
    read_hosts_file,
    write_hosts_file,
)
from fleetcv.ec2.settings import (
    DEFAULT_CLUSTER,
    DEFAULT_USER,
    DEFAULT_WORKDIR,
    check_cluster,
)
from fleetcv.ec2.tags import cluster_groups, cluster_instances, settings_of
from fleetcv.ec2.waiting import wait_terminated


@dataclass
class DownResult:
    """What `down` did."""

    cluster: str
    region: str
    terminated: list[str]
    security_groups: list[str]
    removed_hosts: list[str]
    fetched: bool


def down(
    cluster: str = DEFAULT_CLUSTER,
    fetch: Callable[[list[dict]], Any] | None = None,
    hosts_file: str | os.PathLike = "hosts.yml",
    region: str | None = None,
    endpoint_url: str | None = None,
    timeout: float = 600.0,
    poll: float = 5.0,
    progress: bool = True,
) -> DownResult:
    """Terminate the cluster's instances and delete its security group.

    Only resources tagged ``fleetcv:cluster=<cluster>`` are touched. Their
    entries are removed from the hosts file (a file left without hosts falls
    back to "this machine alone").

    Parameters
    ----------
    cluster : str
        The cluster name given to `up`.
    fetch : callable, optional
        Called as ``fetch(entries)`` with the host entries of the live
        instances before anything is terminated, to copy run directories back;
        if it raises, nothing is terminated. None: nothing is fetched.
    hosts_file, region, endpoint_url
        As for `up` (see `LaunchSettings`).
    timeout, poll : float
        Seconds to wait for the instances to terminate (the security group
        can only be deleted then), and between two looks.
    progress : bool
        Show a progress bar (stderr).

    Returns
    -------
    DownResult

    Raises
    ------
    Ec2Error
        If termination or the group's deletion does not complete in time;
        re-running `down` finishes the job.
    """
    cluster = check_cluster(cluster)
    path = hosts_path(hosts_file)
    header, data = read_hosts_file(path) if path.exists() else ("", None)
    ec2 = connect(region, endpoint_url)
    groups = cluster_groups(ec2, cluster)
    instances = cluster_instances(ec2, cluster)
    live = [i for i in instances if i["State"]["Name"] != "terminated"]
    running = [i for i in live if i["State"]["Name"] == "running"]
    if fetch is not None and running:
        saved = settings_of(groups[0]) if groups else {}
        fetch(_entries_of(cluster, running, data, saved))
    live_ids = [i["InstanceId"] for i in live]
    if live_ids:
        call(ec2, "terminate_instances", InstanceIds=live_ids)
        wait_terminated(ec2, live_ids, timeout, poll, progress)
    deleted = []
    for g in groups:
        _delete_group(ec2, g["GroupId"], timeout, poll)
        deleted.append(g["GroupId"])
    removed = []
    if data is not None:
        removed = drop_instances(data, {i["InstanceId"] for i in instances})
        if removed:
            write_hosts_file(path, header, data)
    return DownResult(
        cluster=cluster,
        region=ec2.region,
        terminated=live_ids,
        security_groups=deleted,
        removed_hosts=removed,
        fetched=fetch is not None and bool(running),
    )


def _entries_of(
    cluster: str, running: list[dict], data: dict | None, saved: dict[str, str]
) -> list[dict]:
    """The host entries of running instances, for `fetch`.

    Hosts-file entries first (they carry the user's edits), else what the
    cluster was launched with.
    """
    entries = ec2_entries(data)
    return [
        entries.get(i["InstanceId"])
        or host_entry(
            cluster,
            i,
            1,
            saved.get("user", DEFAULT_USER),
            saved.get("workdir", DEFAULT_WORKDIR),
            saved.get("ssh-key"),
        )
        for i in running
    ]


def _delete_group(ec2: Ec2, group_id: str, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            call(ec2, "delete_security_group", GroupId=group_id)
            return
        except Ec2Error as exc:
            # EC2 releases the group's network interfaces a little after the
            # instances terminate; until then the group is "in use".
            if exc.code != "DependencyViolation" or time.monotonic() > deadline:
                raise
        time.sleep(poll)


def down_lines(res: DownResult, hosts_file: str) -> list[str]:
    """What `ec2.down` prints: what was terminated, deleted and removed from the hosts file."""
    lines = []
    if not res.terminated and not res.security_groups:
        lines.append(
            f"no EC2 cluster named {res.cluster!r} in {res.region}: nothing to do"
        )
    lines += [f"{i}: terminated" for i in res.terminated]
    lines += [f"{g}: security group deleted" for g in res.security_groups]
    if res.removed_hosts:
        lines.append(f"removed {', '.join(res.removed_hosts)} from {hosts_file}")
    return lines
