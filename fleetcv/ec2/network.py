"""Who may reach a cluster: the SSH network, this machine's address, the security group.

Runs on the laptop; talks only to the EC2 API (and, for ``--ssh-cidr auto``
alone, to checkip.amazonaws.com). The cluster's security group lets SSH in
from the owner's network only, and the ipyparallel controller ports and SSH
from members of the group only.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Callable

from fleetcv.ec2.api import Ec2, Ec2Error, call
from fleetcv.ec2.tags import cluster_groups, cluster_tags
from fleetcv.errors import ConfigError

#: The description of the rule that lets the owner in.
_OWNER_RULE = "fleetcv: SSH from the owner"


def check_ssh_cidr(cidr: str) -> str:
    """Validate the network allowed to SSH into the cluster.

    Parameters
    ----------
    cidr : str
        An IPv4 or IPv6 network (``203.0.113.7/32``); a bare address means
        that address alone.

    Returns
    -------
    str
        The normalized CIDR.

    Raises
    ------
    ConfigError
        If it is not a network, or is the whole internet (``/0``): SSH of
        cluster nodes is opened to the caller only.
    """
    try:
        net = ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"--ssh-cidr: expected an address or network like 203.0.113.7/32, got "
            f"{cidr!r}. Fix: pass your public address, or --ssh-cidr auto"
        ) from None
    widest = 16 if net.version == 4 else 48
    if 0 < net.prefixlen < widest:
        raise ConfigError(
            f"--ssh-cidr: {cidr} opens SSH to {net.num_addresses:,} addresses, more "
            f"than a /{widest}. Fix: pass your own public address (e.g. "
            "203.0.113.7/32) or your office's network, or --ssh-cidr auto"
        )
    if net.prefixlen == 0:
        raise ConfigError(
            f"--ssh-cidr: {cidr} opens SSH to the whole internet. Fix: pass your own "
            "public address (e.g. 203.0.113.7/32), or --ssh-cidr auto"
        )
    return str(net)


def resolve_ssh_cidr(cidr: str | None, detect_ip: Callable[[], str]) -> str | None:
    """The checked SSH network of a ``--ssh-cidr`` value; ``auto`` asks `detect_ip`.

    None stays None (an existing cluster keeps its rules).
    """
    if cidr == "auto":
        cidr = f"{detect_ip()}/32"
    return None if cidr is None else check_ssh_cidr(cidr)


def public_ip(timeout: float = 5.0) -> str:
    """Return the public IPv4 address of this machine, as AWS sees it (checkip.amazonaws.com).

    Only called for ``--ssh-cidr auto``; tests inject their own detector.

    Raises
    ------
    ConfigError
        If the address cannot be found (offline, a proxy in the way).
    """
    try:
        with urllib.request.urlopen(
            "https://checkip.amazonaws.com", timeout=timeout
        ) as resp:
            text = resp.read(64).decode().strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--ssh-cidr auto: cannot find this machine's public address ({exc}). "
            "Fix: pass --ssh-cidr YOUR.PUBLIC.IP/32"
        ) from exc


def vpc_of(ec2: Ec2, subnet: str | None) -> str:
    """The VPC of a subnet, or the region's default VPC.

    Raises
    ------
    ConfigError
        If the subnet does not exist, or there is no default VPC.
    """
    if subnet:
        subnets = call(ec2, "describe_subnets", SubnetIds=[subnet]).get("Subnets", [])
        if not subnets:
            raise ConfigError(
                f"--subnet: no subnet {subnet!r} in {ec2.region}. Fix: pass a subnet id that exists"
            )
        return subnets[0]["VpcId"]
    vpcs = call(
        ec2, "describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}]
    ).get("Vpcs", [])
    if not vpcs:
        raise ConfigError(
            f"--subnet: {ec2.region} has no default VPC. Fix: pass --subnet subnet-... "
            "(a public subnet of your VPC)"
        )
    return vpcs[0]["VpcId"]


def ensure_security_group(
    ec2: Ec2,
    cluster: str,
    vpc_id: str,
    ssh_cidr: str | None,
    ports: tuple[int, int],
) -> tuple[str, bool]:
    """Create or reuse the cluster's security group.

    The group lets SSH in from ``ssh_cidr`` (the caller) only, and the
    ipyparallel controller ports and SSH from members of the group only (a
    head node runs the controller and reaches the others). Egress is EC2's
    default (everything), which pip and rsync need.

    Returns
    -------
    (group_id, created) : (str, bool)

    Raises
    ------
    ConfigError
        If the cluster is new and `ssh_cidr` is None.
    """
    groups = cluster_groups(ec2, cluster)
    created = False
    if groups:
        group_id = groups[0]["GroupId"]
    else:
        if ssh_cidr is None:
            raise ConfigError(
                f"--ssh-cidr: required for the new cluster {cluster!r} (SSH is opened to "
                "your address only). Fix: pass --ssh-cidr YOUR.PUBLIC.IP/32, or --ssh-cidr auto"
            )
        group_id = call(
            ec2,
            "create_security_group",
            GroupName=f"fleetcv-{cluster}",
            Description=f"fleetcv cluster {cluster}: SSH from the owner, controller ports within the group",
            VpcId=vpc_id,
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": cluster_tags(cluster)}
            ],
        )["GroupId"]
        created = True
    for rule in _ingress_rules(group_id, ssh_cidr, ports):
        _authorize(ec2, group_id, [rule])
    return group_id, created


def _ingress_rules(
    group_id: str, ssh_cidr: str | None, ports: tuple[int, int]
) -> list[dict]:
    """SSH and the controller ports within the group; SSH from `ssh_cidr` if given."""
    inside = [{"GroupId": group_id}]
    rules = [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": inside},
        {
            "IpProtocol": "tcp",
            "FromPort": ports[0],
            "ToPort": ports[1],
            "UserIdGroupPairs": inside,
        },
    ]
    if ssh_cidr is not None:
        net = ipaddress.ip_network(ssh_cidr)
        ranges = (
            {"IpRanges": [{"CidrIp": ssh_cidr, "Description": _OWNER_RULE}]}
            if net.version == 4
            else {"Ipv6Ranges": [{"CidrIpv6": ssh_cidr, "Description": _OWNER_RULE}]}
        )
        rules.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, **ranges})
    return rules


def _authorize(ec2: Ec2, group_id: str, permissions: list[dict]) -> None:
    try:
        call(
            ec2,
            "authorize_security_group_ingress",
            GroupId=group_id,
            IpPermissions=permissions,
        )
    except Ec2Error as exc:
        # up on an existing cluster re-sends its rules; that is not an error.
        if exc.code != "InvalidPermission.Duplicate":
            raise
