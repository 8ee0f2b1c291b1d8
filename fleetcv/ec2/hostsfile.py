"""The EC2 hosts of a hosts file: reading, updating, validating, writing it.

Runs on the laptop; touches only the local hosts file, never EC2 or a host.
An EC2 instance of fleetcv's is a hosts-file entry with the ``ec2_instance_id``
marker; `ec2.up` and `ec2.grow` add such entries, `ec2.down` removes them,
and every other entry and the controller section are kept as they are.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from fleetcv.errors import ConfigError
from fleetcv.spec import DEFAULT_HOSTS, DEFAULT_PORTS, parse_hosts

#: The hosts-file key that marks an entry as an EC2 instance of fleetcv's.
MARKER = "ec2_instance_id"


def hosts_path(hosts_file: str | os.PathLike | None) -> Path:
    """The hosts file to update: the one given, else ./hosts.yml."""
    return Path(hosts_file or "hosts.yml")


def read_hosts_file(hosts_file: str | os.PathLike) -> tuple[str, dict]:
    """Read a hosts file for update: its leading comment block and its data.

    A missing file gives fleetcv's default controller section, reached
    through SSH tunnels (``tunnel: true``), and no hosts.
    """
    path = Path(hosts_file)
    if not path.exists():
        header = (
            "# Written by `invoke ec2.up`: entries with ec2_instance_id are EC2 hosts\n"
            "# of fleetcv's, removed again by `invoke ec2.down`. The controller runs\n"
            "# on this machine; the instances reach it through SSH tunnels.\n"
        )
        # The security group lets only SSH in from this machine, and a laptop
        # is usually behind NAT: the tunnel is what works from here.
        controller = {**copy.deepcopy(DEFAULT_HOSTS["controller"]), "tunnel": True}
        return header, {"controller": controller, "hosts": []}
    text = path.read_text()
    # PyYAML drops comments on a rewrite; keep at least the file's heading.
    lines = text.splitlines(keepends=True)
    n = next(
        (
            i
            for i, line in enumerate(lines)
            if line.strip() and not line.lstrip().startswith("#")
        ),
        len(lines),
    )
    header = "".join(lines[:n])
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--hosts-file {path}: not valid YAML ({exc}). Fix: correct the syntax"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"--hosts-file {path}: expected a mapping at the top level. Fix: see hosts.yml"
        )
    data.setdefault("hosts", [])
    if not isinstance(data["hosts"], list):
        raise ConfigError(
            f"--hosts-file {path}: hosts: expected a list. Fix: see hosts.yml"
        )
    return header, data


def validate_hosts_data(data: dict, where: str) -> None:
    """Validate hosts-file data with fleetcv's own validator.

    The EC2 marker key is taken out first, so this works whether or not
    `fleetcv.spec.parse_hosts` knows it yet; everything else is checked as
    `invoke cluster.start` would check it.
    """
    stripped = copy.deepcopy(data)
    stripped["hosts"] = [
        {k: v for k, v in h.items() if k != MARKER} if isinstance(h, dict) else h
        for h in stripped.get("hosts") or []
    ]
    if not stripped["hosts"]:
        stripped["hosts"] = copy.deepcopy(DEFAULT_HOSTS["hosts"])
    parse_hosts(stripped, where)


def write_hosts_file(hosts_file: str | os.PathLike, header: str, data: dict) -> None:
    """Validate and atomically write a hosts file (a crash never leaves half a file)."""
    path = Path(hosts_file)
    if not data.get("hosts"):
        # No hosts left: back to "this machine alone", which is a valid file.
        data["hosts"] = copy.deepcopy(DEFAULT_HOSTS["hosts"])
    validate_hosts_data(data, str(path))
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(header + body)
    os.replace(tmp, path)


def controller_ports(data: dict) -> tuple[int, int]:
    """The controller's port range of hosts-file data (fleetcv's default if unset)."""
    ports = (data.get("controller") or {}).get("ports") or list(DEFAULT_PORTS)
    return int(ports[0]), int(ports[1])


def host_name(cluster: str, instance_id: str) -> str:
    """The hosts-file name of an instance: ``<cluster>-<last 8 of its id>``."""
    return f"{cluster}-{instance_id.rsplit('-', 1)[-1][-8:]}"


def host_entry(
    cluster: str,
    inst: dict,
    vcpus: int,
    user: str,
    workdir: str,
    ssh_key: str | None = None,
) -> dict:
    """The hosts-file entry of one running instance.

    The address is the public IP (what the laptop reaches), else the private
    one (an instance in a private subnet, reached from inside the VPC).
    """
    ip = inst.get("PublicIpAddress") or inst.get("PrivateIpAddress")
    entry = {
        "name": host_name(cluster, inst["InstanceId"]),
        "address": f"{user}@{ip}",
        "engines": int(vcpus),
        "workdir": workdir,
    }
    if ssh_key:
        entry["ssh_key"] = ssh_key
    entry[MARKER] = inst["InstanceId"]
    return entry


def drop_instances(data: dict, instance_ids: set[str]) -> list[str]:
    """Remove the entries of these instances from hosts-file data; return their names."""

    def gone(h) -> bool:
        return isinstance(h, dict) and h.get(MARKER) in instance_ids

    names = [h["name"] for h in data["hosts"] if gone(h)]
    data["hosts"] = [h for h in data["hosts"] if not gone(h)]
    return names


def ec2_entries(data: dict | None) -> dict[str, dict]:
    """The EC2 entries of hosts-file data (None: no file), by instance id."""
    return {
        h[MARKER]: h
        for h in (data or {}).get("hosts", [])
        if isinstance(h, dict) and MARKER in h
    }
