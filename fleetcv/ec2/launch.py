"""Launching EC2 instances into a cluster and adding them to the hosts file.

Runs on the laptop; talks only to the EC2 API (and waits for each new host's
SSH banner). `up` starts or extends a cluster with the settings it is given,
`grow` extends one with the settings of its last `up`; both come down to
`launch_cluster`, which checks everything the user can get wrong before
anything is created, then launches, waits, and records the new hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetcv.ec2.api import Ec2, Ec2Error, call, connect
from fleetcv.ec2.catalog import find_ami, instance_type_info
from fleetcv.ec2.hostsfile import (
    MARKER,
    controller_ports,
    drop_instances,
    host_entry,
    hosts_path,
    read_hosts_file,
    validate_hosts_data,
    write_hosts_file,
)
from fleetcv.ec2.network import (
    ensure_security_group,
    public_ip,
    resolve_ssh_cidr,
    vpc_of,
)
from fleetcv.ec2.settings import (
    LaunchSettings,
    check_cluster,
    check_count,
    check_max_price,
)
from fleetcv.ec2.tags import (
    cluster_groups,
    cluster_instances,
    cluster_tags,
    save_settings,
    settings_of,
)
from fleetcv.ec2.waiting import default_wait_reachable, wait_running, wait_ssh
from fleetcv.errors import ConfigError

#: The warning of a launch without --key-name.
_NO_KEY_WARNING = (
    "no --key-name: the instances have no SSH key of yours unless the AMI provides one"
)
#: States of an instance that counts against --max-instances.
_ACTIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass
class UpResult:
    """What `up` or `grow` did."""

    cluster: str
    region: str
    security_group_id: str
    instance_ids: list[str]
    hosts: list[dict]
    hosts_file: str
    pruned: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def up(
    count: int,
    instance_type: str,
    *,
    wait_reachable: Callable[[str], Any] | None = default_wait_reachable,
    detect_ip: Callable[[], str] = public_ip,
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
    **settings: Any,
) -> UpResult:
    """Launch `count` instances of a cluster and add them to a hosts file.

    Creates (or reuses) the cluster's security group, launches the instances
    tagged ``fleetcv:cluster=<cluster>``, waits until they run and answer on
    SSH, and writes one host entry per instance (name ``<cluster>-<id
    suffix>``, ``user@public-ip``, engines = vCPUs, `workdir`, and the
    ``ec2_instance_id`` marker). The controller section and the hosts that are
    not EC2 instances of fleetcv's are kept. The settings are the next
    `grow`'s.

    Parameters
    ----------
    count : int
        Number of instances to launch (> 0).
    instance_type : str
        EC2 instance type, e.g. ``c5.xlarge``.
    wait_reachable, detect_ip, timeout, poll, progress
        As for `launch_cluster`.
    **settings
        The other fields of `LaunchSettings` (``spot``, ``ami``,
        ``ssh_cidr``, ``cluster``, ``hosts_file``, ...), which documents them.

    Returns
    -------
    UpResult

    Raises
    ------
    ConfigError
        On bad input (count, instance type, region, CIDR, hosts file,
        credentials), before anything is created.
    Ec2Error
        When EC2 cannot launch or the instances do not come up.
    """
    return launch_cluster(
        LaunchSettings(count=count, instance_type=instance_type, **settings),
        wait_reachable=wait_reachable,
        detect_ip=detect_ip,
        timeout=timeout,
        poll=poll,
        progress=progress,
    )


def grow(
    count: int,
    *,
    wait_reachable: Callable[[str], Any] | None = default_wait_reachable,
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
    **settings: Any,
) -> UpResult:
    """Add `count` instances to an existing cluster, with the settings of its `up`.

    The settings (instance type, market, AMI, key, subnet, user, workdir) are
    read from the tags of the cluster's security group; `instance_type`,
    `spot` and `max_price` may override them. Afterwards
    ``invoke hosts.install --only ...`` and ``invoke cluster.grow --only ...``
    start engines on the new hosts, and a running search uses them at once.

    Parameters
    ----------
    count : int
        Number of instances to add (> 0).
    wait_reachable, timeout, poll, progress
        As for `launch_cluster`.
    **settings
        ``cluster``, ``region``, ``endpoint_url``, ``hosts_file`` and
        ``max_instances`` as for `up`; ``instance_type``, ``spot`` and
        ``max_price`` override the cluster's (see `LaunchSettings`).

    Returns
    -------
    UpResult

    Raises
    ------
    ConfigError
        If there is no such cluster, or on bad input.
    Ec2Error
        When EC2 cannot launch or the instances do not come up.
    """
    return launch_cluster(
        LaunchSettings(count=count, **settings),
        grow=True,
        wait_reachable=wait_reachable,
        timeout=timeout,
        poll=poll,
        progress=progress,
    )


def launch_cluster(
    settings: LaunchSettings,
    *,
    grow: bool = False,
    wait_reachable: Callable[[str], Any] | None = default_wait_reachable,
    detect_ip: Callable[[], str] = public_ip,
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
) -> UpResult:
    """Launch instances as `settings` say, wait for them, and add them to the hosts file.

    Parameters
    ----------
    settings : LaunchSettings
        What to launch and where.
    grow : bool
        Add to an existing cluster, with the launch settings of its last
        `up` (those given in `settings` for instance type, market and price
        win); otherwise `settings` become the cluster's.
    wait_reachable : callable or None
        Called as ``wait_reachable(ip)`` for each instance; should return once
        SSH answers and raise otherwise. Default: `default_wait_reachable`;
        None: do not wait.
    detect_ip : callable
        Returns this machine's public IP for ``ssh_cidr="auto"``.
    timeout, poll : float
        Seconds to wait for the instances to run, and between two looks.
    progress : bool
        Show progress bars (stderr).

    Returns
    -------
    UpResult

    Raises
    ------
    ConfigError
        On bad input, before anything is created.
    Ec2Error
        When EC2 cannot launch, or the instances do not run or answer on SSH
        (they are in the hosts file then, and `down` removes them).
    """
    # Everything the user can get wrong is checked before anything is created.
    settings, path, header, data = _check_locally(settings, detect_ip)
    ec2 = connect(settings.region, settings.endpoint_url)
    settings, vcpus = _resolve(ec2, settings, grow)
    group_id = _security_group(ec2, settings, controller_ports(data), grow)
    run = _run_request(settings, group_id)
    ids = [i["InstanceId"] for i in call(ec2, "run_instances", **run)["Instances"]]

    insts = wait_running(ec2, ids, timeout=timeout, poll=poll, progress=progress)
    # Entries are written before the SSH wait: the instances are billed from
    # now on, and the hosts file is where the user looks for them.
    entries = [_entry(settings, i, vcpus) for i in insts]
    pruned = _record_hosts(ec2, settings.cluster, path, header, data, entries)
    unreachable = wait_ssh(entries, wait_reachable, progress)
    if unreachable:
        raise Ec2Error(
            f"SSH did not answer on {len(unreachable)} of {len(entries)} new hosts "
            f"({'; '.join(unreachable)}). They are running, billed and in {path}. "
            "Fix: check --ssh-cidr and --key-name, then retry, or invoke ec2.down"
        )
    return UpResult(
        cluster=settings.cluster,
        region=ec2.region,
        security_group_id=group_id,
        instance_ids=ids,
        hosts=entries,
        hosts_file=str(path),
        pruned=pruned,
        unreachable=unreachable,
        warnings=[] if settings.key_name else [_NO_KEY_WARNING],
    )


def _entry(settings: LaunchSettings, inst: dict, vcpus: int) -> dict:
    """The hosts-file entry of a new instance."""
    user, workdir, key = settings.user, settings.workdir, settings.ssh_key
    return host_entry(settings.cluster, inst, vcpus, user, workdir, key)


def _check_locally(
    settings: LaunchSettings, detect_ip: Callable[[], str]
) -> tuple[LaunchSettings, Path, str, dict]:
    """Check what needs no EC2: count, cluster name, hosts file, SSH network.

    Returns the settings with the SSH network resolved, and the hosts file's
    path, heading and data.
    """
    check_count(settings.count)
    check_cluster(settings.cluster)
    path = hosts_path(settings.hosts_file)
    header, data = read_hosts_file(path)
    if path.exists():
        validate_hosts_data(data, str(path))
    ssh_cidr = resolve_ssh_cidr(settings.ssh_cidr, detect_ip)
    return replace(settings, ssh_cidr=ssh_cidr), path, header, data


def _security_group(
    ec2: Ec2, settings: LaunchSettings, ports: tuple[int, int], grow: bool
) -> str:
    """The id of the cluster's security group, created if new; `up` saves its settings there."""
    vpc_id = vpc_of(ec2, settings.subnet)
    group_id, _ = ensure_security_group(
        ec2, settings.cluster, vpc_id, settings.ssh_cidr, ports
    )
    if not grow:
        # The latest `up` decides what `grow` launches.
        save_settings(ec2, group_id, settings.saved())
    return group_id


def _resolve(
    ec2: Ec2, settings: LaunchSettings, grow: bool
) -> tuple[LaunchSettings, int]:
    """The settings completed and checked against EC2, and the type's vCPU count.

    For `grow`, the cluster's saved settings fill in; the market becomes a
    bool, the price EC2's form, the AMI a concrete image.
    """
    cluster = settings.cluster
    if grow:
        groups = cluster_groups(ec2, cluster)
        if not groups:
            raise ConfigError(
                f"--cluster: no EC2 cluster named {cluster!r} in {ec2.region}. "
                f"Fix: invoke ec2.up --cluster {cluster} ..., or check --cluster/--region"
            )
        settings = settings.with_saved(settings_of(groups[0]))
    spot = bool(settings.spot)
    price = check_max_price(spot, settings.max_price)
    info = instance_type_info(ec2, settings.instance_type)
    live = len(cluster_instances(ec2, cluster, states=_ACTIVE_STATES))
    count, limit = settings.count, settings.max_instances
    if live + count > limit:
        raise ConfigError(
            f"--count: {count} more would make {live + count} instances in cluster "
            f"{cluster!r}, over the limit of {limit}. Fix: pass a smaller --count, "
            f"or --max-instances {live + count} if you mean it"
        )
    ami = settings.ami
    if ami is None:
        ami = find_ami(ec2, info["architectures"])
    return replace(settings, spot=spot, max_price=price, ami=ami), info["vcpus"]


def _run_request(settings: LaunchSettings, group_id: str) -> dict[str, Any]:
    """The RunInstances arguments of a launch."""
    run: dict[str, Any] = {
        "ImageId": settings.ami,
        "InstanceType": settings.instance_type,
        "MinCount": settings.count,
        "MaxCount": settings.count,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": cluster_tags(settings.cluster)}
        ],
        # `sudo poweroff` on a node ends it, rather than leaving a stopped
        # instance whose disk is still billed and whose host entry is dead.
        "InstanceInitiatedShutdownBehavior": "terminate",
    }
    if settings.subnet:
        run["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": settings.subnet,
                "Groups": [group_id],
                "AssociatePublicIpAddress": True,
            }
        ]
    else:
        run["SecurityGroupIds"] = [group_id]
    if settings.key_name:
        run["KeyName"] = settings.key_name
    if settings.spot:
        opts: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if settings.max_price:
            opts["MaxPrice"] = settings.max_price
        run["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": opts}
    return run


def _record_hosts(
    ec2: Ec2, cluster: str, path: Path, header: str, data: dict, entries: list[dict]
) -> list[str]:
    """Write the new entries, dropping those of instances that ended; return the dropped names."""
    ended = {
        i["InstanceId"]
        for i in cluster_instances(ec2, cluster, states=["shutting-down", "terminated"])
    }
    pruned = drop_instances(data, ended)
    data["hosts"] += entries
    write_hosts_file(path, header, data)
    return pruned


def launch_lines(res: UpResult, hosts_file: str) -> list[str]:
    """What `ec2.up` and `ec2.grow` print: the new hosts, the pruned ones, warnings, next steps."""
    lines = [
        f"{h['name']}: {h['address']} ({h['engines']} engines, {h[MARKER]})"
        for h in res.hosts
    ]
    lines += [
        f"{name}: terminated (spot reclaim?), removed from {hosts_file}"
        for name in res.pruned
    ]
    lines.append(f"wrote {hosts_file} (security group {res.security_group_id})")
    lines += [f"warning: {w}" for w in res.warnings]
    names = ",".join(h["name"] for h in res.hosts)
    lines.append(
        f"next: invoke hosts.install --hosts-file {hosts_file} --only {names}\n"
        f"These instances are billed until: invoke ec2.down --cluster {res.cluster} "
        f"--region {res.region}"
    )
    return lines
