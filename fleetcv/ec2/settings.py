"""The launch settings of an EC2 cluster: defaults, one dataclass, their checks.

Runs on the laptop; pure data, no EC2 call. `LaunchSettings` is built once
from the flags of ``invoke ec2.up`` / ``ec2.grow`` (or the arguments of
`fleetcv.ec2.up` / `grow`) and passed down whole. The settings a later
`grow` needs are stored as tags of the cluster's security group (tags.py);
`LaunchSettings.saved` and `LaunchSettings.with_saved` are the two directions.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from fleetcv.errors import ConfigError


def _default_cluster() -> str:
    """``fleetcv-<login>``: users of one AWS account never share a default cluster.

    With one shared name, one user's `ec2.down` would terminate another's
    instances (every tagged instance of the cluster goes).
    """
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no login name (a bare container): no user part
        return "fleetcv"
    part = re.sub(r"[^A-Za-z0-9-]+", "-", login).strip("-")[:32]
    return f"fleetcv-{part}" if part else "fleetcv"


DEFAULT_CLUSTER = _default_cluster()
DEFAULT_USER = "ubuntu"
#: /mnt is the instance-store (local disk) mount point of Ubuntu AMIs.
DEFAULT_WORKDIR = "/mnt/fleetcv"
#: A cap on the instances of one cluster, so a typo (--count 100) costs nothing.
DEFAULT_MAX_INSTANCES = 32
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")


@dataclass(frozen=True)
class LaunchSettings:
    """What to launch, into which cluster, and which hosts file to update.

    Attributes
    ----------
    count : int
        Number of instances to launch (> 0).
    instance_type : str, optional
        EC2 instance type, e.g. ``c5.xlarge``; checked with
        DescribeInstanceTypes. None for `grow`: the cluster's.
    cluster : str
        Cluster name: the tag value that `grow`, `status` and `down` select on.
    spot : bool, optional
        Launch on the spot market (cheaper, may be reclaimed at any time).
        None: on-demand for `up`, the cluster's market for `grow`.
    max_price : float or str, optional
        Highest spot price in USD/hour (spot only; default: the on-demand price).
    ami : str, optional
        Image id; default: the newest Canonical Ubuntu 24.04 image.
    key_name : str, optional
        EC2 key pair installed for `user`; without one nothing can log in
        unless the AMI provides another way.
    ssh_key : str, optional
        Local private key path written to the host entries.
    subnet : str, optional
        Subnet id (a public one, for the laptop to reach the hosts); default:
        the default VPC.
    ssh_cidr : str, optional
        Who may SSH in; required for a new cluster. ``"auto"``: this
        machine's public address (a /32).
    user : str
        Login user of the AMI (``ubuntu`` on Ubuntu images).
    workdir : str
        The hosts' workdir, on the instance's local disk.
    max_instances : int
        Refuse to grow the cluster past this many live instances.
    region : str, optional
        Region; default: the AWS configuration's.
    endpoint_url : str, optional
        An EC2-compatible endpoint; default ``$FLEETCV_EC2_ENDPOINT``, else AWS.
    hosts_file : path
        The hosts file to create or update.
    """

    count: int
    instance_type: str | None = None
    cluster: str = DEFAULT_CLUSTER
    spot: bool | None = None
    max_price: float | str | None = None
    ami: str | None = None
    key_name: str | None = None
    ssh_key: str | None = None
    subnet: str | None = None
    ssh_cidr: str | None = None
    user: str = DEFAULT_USER
    workdir: str = DEFAULT_WORKDIR
    max_instances: int = DEFAULT_MAX_INSTANCES
    region: str | None = None
    endpoint_url: str | None = None
    hosts_file: str | os.PathLike = "hosts.yml"

    def saved(self) -> dict[str, Any]:
        """The settings a later `grow` reuses, keyed by their tag names.

        Call it on resolved settings (the AMI found, the price checked).
        """
        return {
            "instance-type": self.instance_type,
            "market": "spot" if self.spot else "on-demand",
            "max-price": self.max_price,
            "ami": self.ami,
            "key-name": self.key_name,
            "subnet": self.subnet,
            "user": self.user,
            "workdir": self.workdir,
            "ssh-key": self.ssh_key,
        }

    def with_saved(self, saved: dict[str, str]) -> LaunchSettings:
        """These settings completed from a cluster's `saved` ones, for `grow`.

        `instance_type`, `spot` and `max_price` given here win; the image,
        key, subnet, user, workdir and key path are always the cluster's.
        """
        spot = self.spot if self.spot is not None else saved.get("market") == "spot"
        max_price = self.max_price
        if max_price is None and spot and saved.get("max-price"):
            max_price = saved["max-price"]
        return replace(
            self,
            instance_type=self.instance_type or saved.get("instance-type"),
            spot=spot,
            max_price=max_price,
            ami=saved.get("ami"),
            key_name=saved.get("key-name"),
            subnet=saved.get("subnet"),
            user=saved.get("user", DEFAULT_USER),
            workdir=saved.get("workdir", DEFAULT_WORKDIR),
            ssh_key=saved.get("ssh-key"),
        )


def check_count(count: Any, flag: str = "--count") -> int:
    """Return `count` if it is a positive number of instances; raise ConfigError otherwise."""
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ConfigError(
            f"{flag}: expected a positive number of instances, got {count!r}. "
            f"Fix: pass {flag} 1 or more"
        )
    return count


def check_cluster(cluster: Any) -> str:
    """Return `cluster` if it is a valid cluster name; raise ConfigError otherwise."""
    if not isinstance(cluster, str) or not _CLUSTER_NAME.fullmatch(cluster):
        raise ConfigError(
            f"--cluster: expected 1-40 letters, digits or '-' starting with a letter "
            f"or digit, got {cluster!r}. Fix: pass e.g. --cluster fleetcv"
        )
    return cluster


def check_max_price(spot: bool, max_price: Any) -> str | None:
    """The spot bid as EC2 takes it (a decimal string), or None for no bid.

    Raises
    ------
    ConfigError
        If a price is given without `spot`, or is not a positive number.
    """
    if max_price is None:
        return None
    if not spot:
        raise ConfigError(
            f"--max-price: {max_price!r} is a spot bid, but --spot is not given. "
            "Fix: add --spot, or drop --max-price"
        )
    try:
        value = float(max_price)
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(
            f"--max-price: expected a price in USD per hour > 0, got {max_price!r}. "
            "Fix: pass e.g. --max-price 0.10 (see invoke ec2.prices)"
        )
    return f"{value:g}"
