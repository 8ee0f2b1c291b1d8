"""Invoke tasks of fleetcv's EC2 clusters: ``invoke ec2.up|grow|status|prices|down``.

Runs on the laptop. Thin, like tasks.py: parse the flags, call runtime.ec2
(the EC2 API) and, for ``ec2.down``, rsync the hosts' run directories back
before terminating them. Errors a user can fix end as one ``error: ...`` line
and exit status 2; EC2-side failures (capacity, quota, timeouts) exit 1.

Standalone: ``invoke -c ec2_tasks ec2.status``; in fleetcv's own task list
once tasks.py adds the ``ec2`` collection.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shlex
import subprocess
from pathlib import Path

from invoke import Collection, Exit, task

from runtime import ec2 as cloud
from runtime.errors import ConfigError, FleetcvError
from runtime.spec import HOSTS_ENV, HostsConfig, load_hosts

_COMMON = {
    "cluster": f"cluster name, the value of the {cloud.TAG_CLUSTER} tag (default {cloud.DEFAULT_CLUSTER})",
    "region": "AWS region (default: the AWS configuration's, e.g. AWS_DEFAULT_REGION)",
    "endpoint-url": f"an EC2-compatible endpoint (default ${cloud.ENDPOINT_ENV}, else AWS)",
    "hosts-file": f"hosts file to update (default ${HOSTS_ENV}, else hosts.yml)",
}
_LAUNCH = {
    "count": "number of instances to launch",
    "max-instances": f"refuse to go past this many live instances in the cluster (default {cloud.DEFAULT_MAX_INSTANCES})",
    "no-ssh-wait": "do not wait for SSH to answer on the new hosts",
}
#: The flags of ec2.up and ec2.grow that are whole numbers.
_INT_FLAGS = ("count", "max_instances")


def _ec2_task(*args, **kwargs):
    """`@task` without short flags, turning fleetcv's errors into one line and their exit status."""

    def deco(fn):
        @functools.wraps(fn)
        def body(*a, **kw):
            try:
                return fn(*a, **kw)
            except FleetcvError as exc:
                # ConfigError exits 2, Ec2Error (a HostError) 1.
                raise Exit(f"error: {exc}", code=exc.exit_code) from None

        # Short flags would clash (-h is --help) and shift as flags are added.
        kwargs.setdefault("auto_shortflags", False)
        return task(*args, **kwargs)(body)

    return deco


def _hosts_file(hosts_file: str | None) -> str:
    return hosts_file or os.environ.get(HOSTS_ENV) or "hosts.yml"


def _int(flag: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{flag}: expected a whole number, got {value!r}. Fix: pass e.g. {flag} 2"
        ) from None


def _settings(flags: dict) -> cloud.LaunchSettings:
    """The LaunchSettings of a task's flags, given as its ``locals()``.

    Invoke makes a task's flags from its parameters, which are named as
    LaunchSettings' fields; the others (``c``, ``no_ssh_wait``) are left out.
    """
    names = {f.name for f in dataclasses.fields(cloud.LaunchSettings)}
    values = {k: v for k, v in flags.items() if k in names}
    for key in _INT_FLAGS:
        values[key] = _int("--" + key.replace("_", "-"), values[key])
    return cloud.LaunchSettings(**values)


def _require_instance_type(instance_type: str | None, hint: str = "") -> None:
    if instance_type is None:
        raise ConfigError(
            f"--instance-type: required. Fix: pass e.g. --instance-type c5.xlarge{hint}"
        )


def _wait(no_ssh_wait: bool):
    # Looked up at call time, so tests can replace runtime.ec2's default.
    return None if no_ssh_wait else cloud.default_wait_reachable


def _print_launch(res: cloud.UpResult, hosts_file: str) -> None:
    for h in res.hosts:
        print(
            f"{h['name']}: {h['address']} ({h['engines']} engines, {h[cloud.MARKER]})"
        )
    for name in res.pruned:
        print(f"{name}: terminated (spot reclaim?), removed from {hosts_file}")
    print(f"wrote {hosts_file} (security group {res.security_group_id})")
    for w in res.warnings:
        print(f"warning: {w}")
    names = ",".join(h["name"] for h in res.hosts)
    print(
        f"next: invoke hosts.install --hosts-file {hosts_file} --only {names}\n"
        f"These instances are billed until: invoke ec2.down --cluster {res.cluster} "
        f"--region {res.region}"
    )


@_ec2_task(
    name="up",
    help={
        **_COMMON,
        **_LAUNCH,
        "instance-type": "EC2 instance type, e.g. c5.xlarge (engines = its vCPUs)",
        "spot": "launch on the spot market (cheaper; AWS may reclaim the instances at any time)",
        "max-price": "highest spot price in USD/hour (default: the on-demand price)",
        "ami": "image id (default: the newest Canonical Ubuntu 24.04 image)",
        "key-name": "EC2 key pair to install for the login user",
        "ssh-key": "local private key of that key pair, written to the host entries",
        "subnet": "subnet id (default: the region's default VPC)",
        "ssh-cidr": "who may SSH in, e.g. 203.0.113.7/32, or `auto` (this machine's public IP); required for a new cluster",
        "user": f"login user of the AMI (default {cloud.DEFAULT_USER})",
        "workdir": f"workdir on the instances' local disk (default {cloud.DEFAULT_WORKDIR})",
    },
)
def ec2_up(
    c,
    count=None,
    instance_type=None,
    spot=False,
    max_price=None,
    ami=None,
    key_name=None,
    ssh_key=None,
    region=None,
    subnet=None,
    cluster=cloud.DEFAULT_CLUSTER,
    ssh_cidr=None,
    user=cloud.DEFAULT_USER,
    workdir=cloud.DEFAULT_WORKDIR,
    endpoint_url=None,
    hosts_file=None,
    max_instances=cloud.DEFAULT_MAX_INSTANCES,
    no_ssh_wait=False,
):
    """Launch an EC2 cluster (or add to it), wait for SSH, and write its hosts to the hosts file."""
    hosts_file = _hosts_file(hosts_file)
    _require_instance_type(
        instance_type, " (invoke ec2.prices --instance-type T shows spot prices)"
    )
    res = cloud.launch_cluster(_settings(locals()), wait_reachable=_wait(no_ssh_wait))
    _print_launch(res, hosts_file)


@_ec2_task(
    name="grow",
    help={
        **_COMMON,
        **_LAUNCH,
        "instance-type": "instance type of the new hosts (default: the cluster's)",
    },
)
def ec2_grow(
    c,
    count=None,
    cluster=cloud.DEFAULT_CLUSTER,
    instance_type=None,
    region=None,
    endpoint_url=None,
    hosts_file=None,
    max_instances=cloud.DEFAULT_MAX_INSTANCES,
    no_ssh_wait=False,
):
    """Add instances to a running EC2 cluster, launched like its `ec2.up`; then cluster.grow puts them to work."""
    hosts_file = _hosts_file(hosts_file)
    res = cloud.launch_cluster(
        _settings(locals()), grow=True, wait_reachable=_wait(no_ssh_wait)
    )
    _print_launch(res, hosts_file)
    print(
        f"then: invoke cluster.grow --hosts-file {hosts_file} --only "
        f"{','.join(h['name'] for h in res.hosts)} (a running search uses them at once)"
    )


@_ec2_task(
    name="status",
    help={k: v for k, v in _COMMON.items() if k != "hosts-file"},
)
def ec2_status(c, cluster=cloud.DEFAULT_CLUSTER, region=None, endpoint_url=None):
    """The cluster's instances: state (a reclaimed spot instance shows), market, price, uptime, cost so far."""
    print(
        cloud.format_status(
            cloud.status(cluster=cluster, region=region, endpoint_url=endpoint_url)
        )
    )


@_ec2_task(
    name="prices",
    help={
        "instance-type": "EC2 instance type, e.g. c5.xlarge",
        "days": "how many days of history (default 7)",
        "region": _COMMON["region"],
        "endpoint-url": _COMMON["endpoint-url"],
    },
)
def ec2_prices(c, instance_type=None, days=7, region=None, endpoint_url=None):
    """Spot price history of an instance type: current, max and average price (like starcluster spothistory)."""
    _require_instance_type(instance_type)
    try:
        days = float(days)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--days: expected a number, got {days!r}. Fix: pass e.g. --days 7"
        ) from None
    p = cloud.prices(instance_type, region=region, endpoint_url=endpoint_url, days=days)
    print(cloud.format_prices(p))


def rsync_fetch_command(entry: dict, remote: str, dest: str | os.PathLike) -> list[str]:
    """The rsync command that copies `remote` of one host entry into `dest`."""
    addr = entry["address"]
    m = addr.rsplit(":", 1)
    host, port = (m[0], m[1]) if len(m) == 2 and m[1].isdigit() else (addr, None)
    ssh = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        # A fresh instance has a host key never seen before; a changed one is still refused.
        "-o",
        "StrictHostKeyChecking=accept-new",
    ]
    if port:
        ssh += ["-p", port]
    if entry.get("ssh_key"):
        ssh += ["-i", os.path.expanduser(entry["ssh_key"])]
    src = remote.format(workdir=entry.get("workdir", cloud.DEFAULT_WORKDIR)).rstrip("/")
    # rsync resolves relative remote paths against $HOME, which is what ~/ means.
    src = src[2:] if src.startswith("~/") else src
    return [
        "rsync",
        "-az",
        "--protect-args",
        "-e",
        " ".join(shlex.quote(p) for p in ssh),
        f"{host}:{src}/",
        f"{os.fspath(dest).rstrip('/')}/{entry['name']}/",
    ]


def rsync_fetch(entries: list[dict], remote: str, dest: str | os.PathLike) -> None:
    """Copy every host's `remote` directory back into ``dest/<host name>/``.

    A host without the directory has nothing to fetch; any other failure
    stops `ec2.down` before it terminates anything.
    """
    failed = []
    for entry in entries:
        Path(dest, entry["name"]).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            rsync_fetch_command(entry, remote, dest), capture_output=True, text=True
        )
        if proc.returncode == 0:
            print(f"[{entry['name']}] fetched into {dest}/{entry['name']}/")
        elif proc.returncode == 23 and "No such file or directory" in proc.stderr:
            print(f"[{entry['name']}] nothing to fetch")
        else:
            failed.append(
                f"{entry['name']}: rsync exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
            )
    if failed:
        raise cloud.Ec2Error(
            f"fetching run directories failed ({'; '.join(failed)}); nothing was "
            "terminated. Fix: check SSH to those hosts, or pass --no-fetch to "
            "terminate without fetching"
        )


@_ec2_task(
    name="down",
    help={
        **_COMMON,
        "no-fetch": "terminate without copying the hosts' run directories back first",
        "fetch-path": "directory to copy back from each host; {workdir} is the host's workdir (default {workdir}/runs)",
        "fetch-to": "where the copies go, one folder per host (default runs/ec2-<cluster>)",
    },
)
def ec2_down(
    c,
    cluster=cloud.DEFAULT_CLUSTER,
    region=None,
    endpoint_url=None,
    hosts_file=None,
    no_fetch=False,
    fetch_path="{workdir}/runs",
    fetch_to=None,
):
    """Fetch run directories back, then terminate exactly the cluster's instances and security group."""
    hosts_file = _hosts_file(hosts_file)
    dest = fetch_to or f"runs/ec2-{cluster}"
    fetch = (
        None
        if no_fetch
        else functools.partial(rsync_fetch, remote=fetch_path, dest=dest)
    )
    before = _hosts_before(hosts_file)
    res = cloud.down(
        cluster=cluster,
        fetch=fetch,
        hosts_file=hosts_file,
        region=region,
        endpoint_url=endpoint_url,
    )
    _print_down(res, hosts_file)
    _close_tunnels(before, res.removed_hosts)


def _hosts_before(hosts_file: str) -> HostsConfig | None:
    """The hosts file as it was before `ec2.down`, to close its tunnels after."""
    try:
        return load_hosts(hosts_file)
    except ConfigError:
        return None  # no usable hosts file: no tunnels of its hosts to close


def _print_down(res: cloud.DownResult, hosts_file: str) -> None:
    if not res.terminated and not res.security_groups:
        print(f"no EC2 cluster named {res.cluster!r} in {res.region}: nothing to do")
    for i in res.terminated:
        print(f"{i}: terminated")
    for g in res.security_groups:
        print(f"{g}: security group deleted")
    if res.removed_hosts:
        print(f"removed {', '.join(res.removed_hosts)} from {hosts_file}")


def _close_tunnels(before: HostsConfig | None, removed_hosts: list[str]) -> None:
    """Close the SSH tunnels to the removed hosts; their ssh would otherwise linger until its keepalives give up."""
    if before is None or not before.controller.tunnel:
        return
    # fabfile pulls in Fabric and paramiko, slow to import; only tunnels need it.
    import fabfile

    gone = set(removed_hosts)
    closed = [
        h.name
        for h in before.remote_hosts
        if h.name in gone and fabfile.close_tunnel(h, before)
    ]
    if closed:
        print(f"closed the SSH tunnels to {', '.join(closed)}")


ec2 = Collection("ec2", ec2_up, ec2_grow, ec2_status, ec2_prices, ec2_down)
#: `invoke -c ec2_tasks ec2.status` works before tasks.py includes the collection.
ns = Collection()
ns.add_collection(ec2)
