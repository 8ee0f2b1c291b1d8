"""A transient EC2 cluster for fleetcv: launch, grow, watch, price and tear down.

Runs on the laptop and talks only to the EC2 API (boto3); it never opens an
SSH session. What it produces is data: the host entries of a hosts file,
which the rest of fleetcv (fabfile.py, runtime/) then uses like any other
hosts. This is the StarCluster part of the original workflow
(``starcluster start / addnode / spothistory / terminate``).

Everything fleetcv creates carries the tag ``fleetcv:cluster=<name>``, and
`down` deletes exactly what carries that tag for that name: instances of other
clusters, or untagged ones, are never touched. The launch settings of a cluster
(instance type, market, AMI, key, subnet, user, workdir) are kept as tags of
its security group, so `grow` needs nothing but a count.

Credentials come from boto3's standard chain only (environment, shared
credentials/config files and profiles, instance role); this module never reads
or writes a secret. ``endpoint_url`` (or ``$FLEETCV_EC2_ENDPOINT``) points it at
any EC2-compatible endpoint; the tests use moto's server on 127.0.0.1.

User-fixable problems raise `runtime.config.ConfigError` with one line naming
the flag, the value and the fix; failures on the EC2 side (quota, capacity,
timeouts) raise `Ec2Error`.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import ipaddress
import math
import os
import re
import socket
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import HostError
from runtime.spec import DEFAULT_HOSTS, DEFAULT_PORTS, ConfigError, parse_hosts

#: The tag that marks every resource fleetcv creates, with the cluster name as value.
TAG_CLUSTER = "fleetcv:cluster"
#: Tag prefix of the launch settings stored on a cluster's security group.
TAG_SETTING = "fleetcv:"
#: The hosts-file key that marks an entry as an EC2 instance of fleetcv's.
MARKER = "ec2_instance_id"
#: Environment variable naming an EC2-compatible endpoint (same as --endpoint-url).
ENDPOINT_ENV = "FLEETCV_EC2_ENDPOINT"
DEFAULT_CLUSTER = "fleetcv"
DEFAULT_USER = "ubuntu"
#: /mnt is the instance-store (local disk) mount point of Ubuntu AMIs.
DEFAULT_WORKDIR = "/mnt/fleetcv"
#: A cap on the instances of one cluster, so a typo (--count 100) costs nothing.
DEFAULT_MAX_INSTANCES = 32
#: Default AMI: the newest Ubuntu 24.04 LTS published by Canonical.
UBUNTU_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-{arch}-server-*"
#: EC2 architecture names -> the names in Ubuntu's AMI names.
UBUNTU_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
#: Spot price history products that describe a Linux instance in a VPC.
LINUX_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
#: Approximate on-demand list prices (USD/hour, Linux, us-east-1) for the cost
#: estimate of `status`. EC2 has no price API of its own (the Pricing API is
#: another service, with other permissions), other regions differ by a few
#: percent, and prices change: the estimate is a guide, the bill is the truth.
ON_DEMAND_USD_HOUR = {
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "t3.xlarge": 0.1664,
    "t3.2xlarge": 0.3328,
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "m5.4xlarge": 0.768,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "m6i.4xlarge": 0.768,
    "c5.large": 0.085,
    "c5.xlarge": 0.17,
    "c5.2xlarge": 0.34,
    "c5.4xlarge": 0.68,
    "c5.9xlarge": 1.53,
    "c6i.large": 0.085,
    "c6i.xlarge": 0.17,
    "c6i.2xlarge": 0.34,
    "c6i.4xlarge": 0.68,
    "c6i.8xlarge": 1.36,
    "r5.large": 0.126,
    "r5.xlarge": 0.252,
    "r5.2xlarge": 0.504,
}
#: Error codes that mean "your credentials are wrong", not "your input is wrong".
_AUTH_CODES = {
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "ExpiredToken",
}
#: Error codes of capacity and quota limits: nothing wrong with the input.
_CAPACITY_CODES = {
    "InsufficientInstanceCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
}
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
_ACTIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


class Ec2Error(HostError):
    """EC2 refused or failed an operation (capacity, quota, timeout, API error).

    ``code`` is EC2's error code when EC2 gave one.
    """

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


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


@dataclass
class DownResult:
    """What `down` did."""

    cluster: str
    region: str
    terminated: list[str]
    security_groups: list[str]
    removed_hosts: list[str]
    fetched: bool


# ----------------------------------------------------------------- connection


@dataclass
class _Ec2:
    client: Any
    region: str
    endpoint_url: str | None


def _connect(region: str | None, endpoint_url: str | None) -> _Ec2:
    """An EC2 client from the standard AWS chain, with region and credentials checked."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    if endpoint_url and not re.match(r"https?://[^/\s]+", endpoint_url):
        raise ConfigError(
            f"--endpoint-url: expected http(s)://host[:port], got {endpoint_url!r}. "
            f"Fix: pass e.g. --endpoint-url http://127.0.0.1:5000, or unset {ENDPOINT_ENV}"
        )
    # botocore reads the profile lazily: any of these three may find it missing.
    try:
        session = boto3.Session(botocore_session=_botocore_session())
        region = region or session.region_name
        # Checked before any call, so a missing key fails before anything is created.
        credentials = session.get_credentials() if region else None
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS_PROFILE: {exc}. Fix: use a profile of ~/.aws/config "
            "(`aws configure list-profiles`), or unset AWS_PROFILE"
        ) from None
    except BotoCoreError as exc:
        # An expired SSO token, a broken credential_process, ...
        raise ConfigError(
            f"AWS credentials: {exc}. Fix: refresh them (e.g. `aws sso login`) or "
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    if not region:
        raise ConfigError(
            "--region: no region given and none in the AWS configuration. "
            "Fix: pass --region us-east-1 (or set AWS_DEFAULT_REGION / region in ~/.aws/config)"
        )
    if credentials is None:
        raise _no_credentials()
    client = session.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=10, read_timeout=60, retries={"mode": "standard"}
        ),
    )
    _check_region(session, region, endpoint_url)
    return _Ec2(client, region, endpoint_url)


_DATA_LOADER = None


def _botocore_session():
    """A fresh botocore session (credentials and config read anew) sharing one data loader.

    Loading EC2's service model takes a good fraction of a second; sharing the
    loader (which caches it) keeps repeated calls in one process fast.
    """
    import botocore.session

    global _DATA_LOADER
    session = botocore.session.get_session()
    if _DATA_LOADER is None:
        _DATA_LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _DATA_LOADER)
    return session


def _no_credentials() -> ConfigError:
    return ConfigError(
        "AWS credentials: none found in the environment, ~/.aws/credentials, "
        "~/.aws/config or an instance role. Fix: export AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE=NAME after `aws configure`"
    )


def _check_region(session, region: str, endpoint_url: str | None) -> None:
    """Reject a region that neither botocore nor the endpoint knows (a typo, mostly)."""
    known: set[str] = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("ec2", partition_name=partition))
    if region in known:
        return
    if endpoint_url:
        # A private EC2-compatible cloud may name its regions as it likes.
        from botocore.config import Config

        probe = session.client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(retries={"max_attempts": 1}, connect_timeout=10),
        )
        try:
            names = {r["RegionName"] for r in probe.describe_regions()["Regions"]}
        except Exception:  # noqa: BLE001 - an endpoint that cannot answer for it does not know it
            names = set()
        if region in names:
            return
        known |= names
    close = suggest(region, known)
    hint = f"did you mean {' or '.join(close)}?" if close else "check the spelling"
    raise ConfigError(
        f"--region: unknown region {region!r}. Fix: {hint} "
        f"(`aws ec2 describe-regions` lists them)"
    )


def _typo_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from a to b."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(
                prev[j] + 1,
                cur[j - 1] + 1,
                prev[j - 1] + (a[i - 1] != b[j - 1]),
            )
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates closest to a mistyped word, best first (at most 2 edits away).

    Counts a swap of two neighbouring letters as one edit, which is the
    commonest typo (us-esat-1) and which difflib ranks poorly.
    """
    scored = sorted((_typo_distance(word, c), c) for c in set(candidates))
    close = [c for d, c in scored if d <= 2][:n]
    return close or difflib.get_close_matches(word, sorted(set(candidates)), n=n)


def _call(ec2: _Ec2, op: str, **kwargs) -> dict:
    """Call one EC2 operation, turning its failures into one-line errors."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        return getattr(ec2.client, op)(**kwargs)
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise _no_credentials() from exc
    except EndpointConnectionError as exc:
        where = f"--endpoint-url {ec2.endpoint_url}" if ec2.endpoint_url else "--region"
        raise ConfigError(
            f"{where}: cannot reach EC2 ({exc}). Fix: check the network, the region "
            f"{ec2.region!r} and the endpoint"
        ) from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", "?"), err.get("Message", str(exc))
        error = _client_error(ec2, op, code, msg, kwargs)
        # Callers that expect a code (a duplicate rule, a group still in use)
        # test it, never the message text.
        error.code = code
        raise error from exc


def _client_error(ec2: _Ec2, op: str, code: str, msg: str, kwargs: dict) -> Exception:
    if code in _AUTH_CODES:
        return ConfigError(
            f"AWS credentials: EC2 refused them ({code}: {msg}). Fix: check "
            "AWS_ACCESS_KEY_ID/AWS_PROFILE and the IAM permissions for EC2"
        )
    if code == "OptInRequired":
        return ConfigError(
            f"--region: {ec2.region} is not enabled for this account ({msg}). "
            "Fix: enable it in the AWS console or use another region"
        )

    def arg(key: str):
        # The same value goes as X to RunInstances and as [X] to DescribeXs.
        return kwargs.get(key) or (kwargs.get(key + "s") or [None])[0]

    flag_of = {
        "InvalidInstanceType": ("--instance-type", arg("InstanceType")),
        "InvalidAMIID": ("--ami", arg("ImageId")),
        "InvalidKeyPair": ("--key-name", arg("KeyName")),
        "InvalidSubnetID": ("--subnet", arg("SubnetId")),
        "InvalidSubnet": ("--subnet", arg("SubnetId")),
    }
    for prefix, (flag, value) in flag_of.items():
        if code == prefix or code.startswith(prefix + "."):
            return ConfigError(
                f"{flag}: EC2 rejected {value!r} in {ec2.region} ({code}: {msg}). "
                f"Fix: use a value that exists in {ec2.region}"
            )
    if code in _CAPACITY_CODES:
        fix = (
            "raise --max-price or drop it (default cap: the on-demand price)"
            if code == "SpotMaxPriceTooLow"
            else "try another instance type, zone (--subnet) or region, fewer "
            "instances, or ask AWS for a higher quota"
        )
        return Ec2Error(f"EC2 {op}: {code}: {msg}. Fix: {fix}", code)
    return Ec2Error(f"EC2 {op} failed in {ec2.region}: {code}: {msg}", code)


def _pages(ec2: _Ec2, op: str, key: str, **kwargs) -> Iterable[dict]:
    """Every item of a paginated EC2 list, with `_call`'s error handling."""
    token = None
    while True:
        page = _call(ec2, op, **kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


# ------------------------------------------------------------------ validation


def _check_count(count: Any, flag: str = "--count") -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ConfigError(
            f"{flag}: expected a positive number of instances, got {count!r}. "
            f"Fix: pass {flag} 1 or more"
        )
    return count


def _check_cluster(cluster: str) -> str:
    if not isinstance(cluster, str) or not _CLUSTER_NAME.fullmatch(cluster):
        raise ConfigError(
            f"--cluster: expected 1-40 letters, digits or '-' starting with a letter "
            f"or digit, got {cluster!r}. Fix: pass e.g. --cluster fleetcv"
        )
    return cluster


def _check_max_price(spot: bool, max_price: Any) -> str | None:
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
    if net.prefixlen == 0:
        raise ConfigError(
            f"--ssh-cidr: {cidr} opens SSH to the whole internet. Fix: pass your own "
            "public address (e.g. 203.0.113.7/32), or --ssh-cidr auto"
        )
    return str(net)


def public_ip(timeout: float = 5.0) -> str:
    """Return the public IPv4 address of this machine, as AWS sees it (checkip.amazonaws.com).

    Only called for ``--ssh-cidr auto``; tests inject their own detector.
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


def instance_type_info(ec2: _Ec2, instance_type: str) -> dict:
    """The vCPU count and architectures of an instance type (DescribeInstanceTypes).

    Raises
    ------
    ConfigError
        If the region does not offer the type (a typo, mostly), with close
        matches among the common families.
    """
    if not isinstance(instance_type, str) or not instance_type:
        raise ConfigError(
            f"--instance-type: expected a type like c5.xlarge, got {instance_type!r}. "
            "Fix: pass --instance-type c5.xlarge"
        )
    try:
        info = _call(ec2, "describe_instance_types", InstanceTypes=[instance_type])
    except (ConfigError, Ec2Error) as exc:
        # Some endpoints report an unknown type as a plain InvalidParameterValue.
        if getattr(exc, "code", None) not in (
            "InvalidInstanceType",
            "InvalidParameterValue",
        ):
            raise
        info = {"InstanceTypes": []}
    types = info.get("InstanceTypes", [])
    if not types:
        close = suggest(instance_type, ON_DEMAND_USD_HOUR)
        hint = f"did you mean {' or '.join(close)}?" if close else "check the spelling"
        raise ConfigError(
            f"--instance-type: unknown instance type {instance_type!r} in {ec2.region}. "
            f"Fix: {hint} (`aws ec2 describe-instance-types` lists them)"
        )
    t = types[0]
    return {
        "vcpus": int(t["VCpuInfo"]["DefaultVCpus"]),
        "architectures": list(
            t.get("ProcessorInfo", {}).get("SupportedArchitectures", ["x86_64"])
        ),
    }


def find_ami(ec2: _Ec2, architectures: list[str]) -> str:
    """The newest Canonical Ubuntu 24.04 AMI for one of the given architectures."""
    for arch in architectures:
        if arch not in UBUNTU_ARCH:
            continue
        images = list(
            _pages(
                ec2,
                "describe_images",
                "Images",
                Owners=[UBUNTU_OWNER],
                Filters=[
                    {
                        "Name": "name",
                        "Values": [UBUNTU_NAME.format(arch=UBUNTU_ARCH[arch])],
                    },
                    {"Name": "state", "Values": ["available"]},
                    {"Name": "architecture", "Values": [arch]},
                ],
            )
        )
        if images:
            return max(images, key=lambda i: i.get("CreationDate", ""))["ImageId"]
    raise ConfigError(
        f"--ami: no Ubuntu 24.04 image for {'/'.join(architectures)} found in "
        f"{ec2.region}. Fix: pass --ami ami-... (an Ubuntu image with python3)"
    )


# ---------------------------------------------------------------- hosts file


def _hosts_path(hosts_file: str | os.PathLike | None) -> Path:
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
    `runtime.config.parse_hosts` knows it yet; everything else is checked as
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


def _controller_ports(data: dict) -> tuple[int, int]:
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


# ----------------------------------------------------------------- resources


def _tags(d: dict) -> dict:
    return {t["Key"]: t["Value"] for t in d.get("Tags", [])}


def _cluster_filter(cluster: str) -> list[dict]:
    return [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}]


def cluster_instances(
    ec2: _Ec2, cluster: str, states: list[str] | None = None
) -> list[dict]:
    """The instances tagged with this cluster name (all states unless given)."""
    filters = _cluster_filter(cluster)
    if states:
        filters.append({"Name": "instance-state-name", "Values": states})
    out = []
    for res in _pages(ec2, "describe_instances", "Reservations", Filters=filters):
        out.extend(res.get("Instances", []))
    # The filter is the server's; check the tag here too, so that an endpoint
    # that ignores filters can never make `down` terminate someone else's instance.
    return [i for i in out if _tags(i).get(TAG_CLUSTER) == cluster]


def cluster_groups(ec2: _Ec2, cluster: str) -> list[dict]:
    """The security groups tagged with this cluster name."""
    groups = _pages(
        ec2,
        "describe_security_groups",
        "SecurityGroups",
        Filters=_cluster_filter(cluster),
    )
    return [g for g in groups if _tags(g).get(TAG_CLUSTER) == cluster]


def _vpc_of(ec2: _Ec2, subnet: str | None) -> str:
    if subnet:
        subnets = _call(ec2, "describe_subnets", SubnetIds=[subnet]).get("Subnets", [])
        if not subnets:
            raise ConfigError(
                f"--subnet: no subnet {subnet!r} in {ec2.region}. Fix: pass a subnet id that exists"
            )
        return subnets[0]["VpcId"]
    vpcs = _call(
        ec2, "describe_vpcs", Filters=[{"Name": "isDefault", "Values": ["true"]}]
    ).get("Vpcs", [])
    if not vpcs:
        raise ConfigError(
            f"--subnet: {ec2.region} has no default VPC. Fix: pass --subnet subnet-... "
            "(a public subnet of your VPC)"
        )
    return vpcs[0]["VpcId"]


def _authorize(ec2: _Ec2, group_id: str, permissions: list[dict]) -> None:
    try:
        _call(
            ec2,
            "authorize_security_group_ingress",
            GroupId=group_id,
            IpPermissions=permissions,
        )
    except Ec2Error as exc:
        # up on an existing cluster re-sends its rules; that is not an error.
        if exc.code != "InvalidPermission.Duplicate":
            raise


def ensure_security_group(
    ec2: _Ec2,
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
        group_id = _call(
            ec2,
            "create_security_group",
            GroupName=f"fleetcv-{cluster}",
            Description=f"fleetcv cluster {cluster}: SSH from the owner, controller ports within the group",
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [
                        {"Key": TAG_CLUSTER, "Value": cluster},
                        {"Key": "Name", "Value": f"fleetcv-{cluster}"},
                    ],
                }
            ],
        )["GroupId"]
        created = True
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
            {
                "IpRanges": [
                    {"CidrIp": ssh_cidr, "Description": "fleetcv: SSH from the owner"}
                ]
            }
            if net.version == 4
            else {
                "Ipv6Ranges": [
                    {"CidrIpv6": ssh_cidr, "Description": "fleetcv: SSH from the owner"}
                ]
            }
        )
        rules.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, **ranges})
    for rule in rules:
        _authorize(ec2, group_id, [rule])
    return group_id, created


def _settings_tags(settings: dict) -> list[dict]:
    return [
        {"Key": TAG_SETTING + k, "Value": str(v)}
        for k, v in settings.items()
        if v is not None
    ]


def _settings_of(group: dict) -> dict:
    tags = _tags(group)
    return {
        k[len(TAG_SETTING) :]: v
        for k, v in tags.items()
        if k.startswith(TAG_SETTING) and k != TAG_CLUSTER
    }


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


def _progress(total: int, desc: str, enabled: bool):
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
    ec2: _Ec2,
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
    with _progress(len(instance_ids), "running", progress) as bar:
        while True:
            pending = [i for i in instance_ids if i not in done]
            insts: list[dict] = []
            try:
                for res in _pages(
                    ec2, "describe_instances", "Reservations", InstanceIds=pending
                ):
                    insts.extend(res.get("Instances", []))
            except Ec2Error as exc:
                # Just-launched ids may not be visible yet (eventual consistency).
                if exc.code != "InvalidInstanceID.NotFound":
                    raise
            for inst in insts:
                state = inst["State"]["Name"]
                if state == "running":
                    done[inst["InstanceId"]] = inst
                    bar.update(1)
                elif state in ("shutting-down", "terminated", "stopping", "stopped"):
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


# ----------------------------------------------------------------------- up


def up(
    count: int,
    instance_type: str,
    spot: bool = False,
    max_price: float | str | None = None,
    ami: str | None = None,
    key_name: str | None = None,
    region: str | None = None,
    subnet: str | None = None,
    cluster: str = DEFAULT_CLUSTER,
    hosts_file: str | os.PathLike = "hosts.yml",
    endpoint_url: str | None = None,
    wait_reachable: Callable[[str], Any] | None = default_wait_reachable,
    user: str = DEFAULT_USER,
    workdir: str = DEFAULT_WORKDIR,
    ssh_cidr: str | None = None,
    ssh_key: str | None = None,
    detect_ip: Callable[[], str] = public_ip,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
) -> UpResult:
    """Launch `count` instances of a cluster and add them to a hosts file.

    Creates (or reuses) the cluster's security group, launches the instances
    tagged ``fleetcv:cluster=<cluster>``, waits until they run and answer on
    SSH, and writes one host entry per instance (name ``<cluster>-<id
    suffix>``, ``user@public-ip``, engines = vCPUs, `workdir`, and the
    ``ec2_instance_id`` marker). The controller section and the hosts that are
    not EC2 instances of fleetcv's are kept.

    Parameters
    ----------
    count : int
        Number of instances to launch (> 0).
    instance_type : str
        EC2 instance type, e.g. ``c5.xlarge``; checked with DescribeInstanceTypes.
    spot : bool
        Launch on the spot market (cheaper, may be reclaimed at any time).
    max_price : float or str, optional
        Highest spot price in USD/hour (spot only; default: the on-demand price).
    ami : str, optional
        Image id; default: the newest Canonical Ubuntu 24.04 image.
    key_name : str, optional
        EC2 key pair installed for `user`; without one nothing can log in
        unless the AMI provides another way.
    region : str, optional
        Region; default: the AWS configuration's.
    subnet : str, optional
        Subnet id (a public one, for the laptop to reach the hosts); default:
        the default VPC.
    cluster : str
        Cluster name: the tag value that `grow`, `status` and `down` select on.
    hosts_file : path
        The hosts file to create or update.
    endpoint_url : str, optional
        An EC2-compatible endpoint; default ``$FLEETCV_EC2_ENDPOINT``, else AWS.
    wait_reachable : callable or None
        Called as ``wait_reachable(ip)`` for each instance; should return once
        SSH answers and raise otherwise. Default: `default_wait_reachable`;
        None: do not wait.
    user : str
        Login user of the AMI (``ubuntu`` on Ubuntu images).
    workdir : str
        The hosts' workdir, on the instance's local disk.
    ssh_cidr : str, optional
        Who may SSH in; required for a new cluster. ``"auto"`` asks
        `detect_ip` for this machine's public address (a /32).
    ssh_key : str, optional
        Local private key path written to the host entries.
    detect_ip : callable
        Returns this machine's public IP for ``ssh_cidr="auto"``.
    max_instances : int
        Refuse to grow the cluster past this many live instances.
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
        On bad input (count, instance type, region, CIDR, hosts file,
        credentials), before anything is created.
    Ec2Error
        When EC2 cannot launch or the instances do not come up.
    """
    return _launch(
        count=count,
        instance_type=instance_type,
        spot=spot,
        max_price=max_price,
        ami=ami,
        key_name=key_name,
        region=region,
        subnet=subnet,
        cluster=cluster,
        hosts_file=hosts_file,
        endpoint_url=endpoint_url,
        wait_reachable=wait_reachable,
        user=user,
        workdir=workdir,
        ssh_cidr=ssh_cidr,
        ssh_key=ssh_key,
        detect_ip=detect_ip,
        max_instances=max_instances,
        timeout=timeout,
        poll=poll,
        progress=progress,
        must_exist=False,
    )


def grow(
    count: int,
    cluster: str = DEFAULT_CLUSTER,
    region: str | None = None,
    hosts_file: str | os.PathLike = "hosts.yml",
    endpoint_url: str | None = None,
    wait_reachable: Callable[[str], Any] | None = default_wait_reachable,
    instance_type: str | None = None,
    spot: bool | None = None,
    max_price: float | str | None = None,
    max_instances: int = DEFAULT_MAX_INSTANCES,
    timeout: float = 900.0,
    poll: float = 5.0,
    progress: bool = True,
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
    cluster, region, hosts_file, endpoint_url, wait_reachable, max_instances, timeout, poll, progress
        As for `up`.
    instance_type, spot, max_price : optional
        Override the cluster's launch settings for these instances.

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
    return _launch(
        count=count,
        instance_type=instance_type,
        spot=spot,
        max_price=max_price,
        region=region,
        cluster=cluster,
        hosts_file=hosts_file,
        endpoint_url=endpoint_url,
        wait_reachable=wait_reachable,
        max_instances=max_instances,
        timeout=timeout,
        poll=poll,
        progress=progress,
        must_exist=True,
    )


def _launch(
    *,
    count,
    instance_type,
    spot,
    max_price,
    region,
    cluster,
    hosts_file,
    endpoint_url,
    wait_reachable,
    max_instances,
    timeout,
    poll,
    progress,
    must_exist,
    ami=None,
    key_name=None,
    subnet=None,
    user=None,
    workdir=None,
    ssh_cidr=None,
    ssh_key=None,
    detect_ip=public_ip,
) -> UpResult:
    # Everything the user can get wrong is checked before anything is created.
    count = _check_count(count)
    cluster = _check_cluster(cluster)
    path = _hosts_path(hosts_file)
    header, data = read_hosts_file(path)
    if path.exists():
        validate_hosts_data(data, str(path))
    ports = _controller_ports(data)
    if ssh_cidr == "auto":
        ssh_cidr = f"{detect_ip()}/32"
    if ssh_cidr is not None:
        ssh_cidr = check_ssh_cidr(ssh_cidr)
    ec2 = _connect(region, endpoint_url)

    groups = cluster_groups(ec2, cluster)
    if must_exist:
        if not groups:
            raise ConfigError(
                f"--cluster: no EC2 cluster named {cluster!r} in {ec2.region}. "
                f"Fix: invoke ec2.up --cluster {cluster} ..., or check --cluster/--region"
            )
        saved = _settings_of(groups[0])
        instance_type = instance_type or saved.get("instance-type")
        if spot is None:
            spot = saved.get("market") == "spot"
        if max_price is None and spot and saved.get("max-price"):
            max_price = saved["max-price"]
        ami, key_name = saved.get("ami"), saved.get("key-name")
        subnet = saved.get("subnet")
        user = saved.get("user", DEFAULT_USER)
        workdir = saved.get("workdir", DEFAULT_WORKDIR)
        ssh_key = saved.get("ssh-key")
    spot = bool(spot)
    price = _check_max_price(spot, max_price)
    info = instance_type_info(ec2, instance_type)
    live = cluster_instances(ec2, cluster, states=_ACTIVE_STATES)
    if len(live) + count > max_instances:
        raise ConfigError(
            f"--count: {count} more would make {len(live) + count} instances in cluster "
            f"{cluster!r}, over the limit of {max_instances}. Fix: pass a smaller --count, "
            f"or --max-instances {len(live) + count} if you mean it"
        )
    if ami is None:
        ami = find_ami(ec2, info["architectures"])
    vpc_id = _vpc_of(ec2, subnet)
    group_id, _ = ensure_security_group(ec2, cluster, vpc_id, ssh_cidr, ports)
    settings = {
        "instance-type": instance_type,
        "market": "spot" if spot else "on-demand",
        "max-price": price,
        "ami": ami,
        "key-name": key_name,
        "subnet": subnet,
        "user": user,
        "workdir": workdir,
        "ssh-key": ssh_key,
    }
    if not must_exist:
        # The latest `up` decides what `grow` launches.
        _call(
            ec2,
            "delete_tags",
            Resources=[group_id],
            Tags=[{"Key": TAG_SETTING + k} for k in settings],
        )
        _call(ec2, "create_tags", Resources=[group_id], Tags=_settings_tags(settings))

    run: dict[str, Any] = {
        "ImageId": ami,
        "InstanceType": instance_type,
        "MinCount": count,
        "MaxCount": count,
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": TAG_CLUSTER, "Value": cluster},
                    {"Key": "Name", "Value": f"fleetcv-{cluster}"},
                ],
            }
        ],
        # `sudo poweroff` on a node ends it, rather than leaving a stopped
        # instance whose disk is still billed and whose host entry is dead.
        "InstanceInitiatedShutdownBehavior": "terminate",
    }
    if subnet:
        run["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": subnet,
                "Groups": [group_id],
                "AssociatePublicIpAddress": True,
            }
        ]
    else:
        run["SecurityGroupIds"] = [group_id]
    if key_name:
        run["KeyName"] = key_name
    if spot:
        opts: dict[str, Any] = {
            "SpotInstanceType": "one-time",
            "InstanceInterruptionBehavior": "terminate",
        }
        if price:
            opts["MaxPrice"] = price
        run["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": opts}
    ids = [i["InstanceId"] for i in _call(ec2, "run_instances", **run)["Instances"]]

    insts = wait_running(ec2, ids, timeout=timeout, poll=poll, progress=progress)
    # Entries are written before the SSH wait: the instances are billed from
    # now on, and the hosts file is where the user looks for them.
    entries = [
        host_entry(cluster, i, info["vcpus"], user, workdir, ssh_key) for i in insts
    ]
    ended = {
        i["InstanceId"]
        for i in cluster_instances(ec2, cluster, states=["shutting-down", "terminated"])
    }
    pruned = [
        h["name"]
        for h in data["hosts"]
        if isinstance(h, dict) and h.get(MARKER) in ended
    ]
    data["hosts"] = [
        h for h in data["hosts"] if not (isinstance(h, dict) and h.get(MARKER) in ended)
    ] + entries
    write_hosts_file(path, header, data)

    unreachable = []
    with _progress(len(insts), "ssh", progress and wait_reachable is not None) as bar:
        for entry in entries if wait_reachable is not None else []:
            try:
                wait_reachable(entry["address"].split("@", 1)[1])
            except Exception as exc:  # noqa: BLE001 - one host's failure must not hide the others
                unreachable.append(f"{entry['name']}: {exc}")
            bar.update(1)
    warnings = []
    if not key_name:
        warnings.append(
            "no --key-name: the instances have no SSH key of yours unless the AMI provides one"
        )
    result = UpResult(
        cluster=cluster,
        region=ec2.region,
        security_group_id=group_id,
        instance_ids=ids,
        hosts=entries,
        hosts_file=str(path),
        pruned=pruned,
        unreachable=unreachable,
        warnings=warnings,
    )
    if unreachable:
        raise Ec2Error(
            f"SSH did not answer on {len(unreachable)} of {len(entries)} new hosts "
            f"({'; '.join(unreachable)}). They are running, billed and in {path}. "
            "Fix: check --ssh-cidr and --key-name, then retry, or invoke ec2.down"
        )
    return result


# ------------------------------------------------------------------- status


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _spot_price_now(
    ec2: _Ec2, instance_type: str, zone: str | None, now: dt.datetime
) -> float | None:
    kwargs: dict[str, Any] = {
        "InstanceTypes": [instance_type],
        "ProductDescriptions": LINUX_PRODUCTS,
        "StartTime": now,
        "MaxResults": 20,
    }
    if zone:
        kwargs["AvailabilityZone"] = zone
    hist = _call(ec2, "describe_spot_price_history", **kwargs).get(
        "SpotPriceHistory", []
    )
    if zone:
        hist = [h for h in hist if h.get("AvailabilityZone") == zone] or hist
    if not hist:
        return None
    return float(max(hist, key=lambda h: h["Timestamp"])["SpotPrice"])


def status(
    cluster: str = DEFAULT_CLUSTER,
    region: str | None = None,
    endpoint_url: str | None = None,
    now: dt.datetime | None = None,
) -> list[dict]:
    """One row per instance of the cluster, terminated ones included.

    A spot instance that AWS reclaimed shows as terminated with the reason
    (``Server.SpotInstanceTermination``): for fleetcv it is a lost host, whose
    tasks the search resubmits.

    Parameters
    ----------
    cluster, region, endpoint_url
        As for `up`.
    now : datetime, optional
        The time to compute uptimes against (tests); default: now.

    Returns
    -------
    list of dict
        Keys: ``instance_id``, ``name``, ``state``, ``reason``, ``market``
        (``spot``/``on-demand``), ``type``, ``zone``, ``address``, ``price``
        (USD/hour: the current spot price, or the approximate on-demand list
        price; None when unknown), ``uptime_h`` (None unless running),
        ``cost`` (``price x uptime``, an estimate; None when unknown).
    """
    cluster = _check_cluster(cluster)
    ec2 = _connect(region, endpoint_url)
    now = now or _now()
    rows = []
    spot_cache: dict[tuple[str, str | None], float | None] = {}
    for inst in cluster_instances(ec2, cluster):
        itype = inst["InstanceType"]
        zone = inst.get("Placement", {}).get("AvailabilityZone")
        market = "spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand"
        state = inst["State"]["Name"]
        if market == "spot":
            if (itype, zone) not in spot_cache:
                spot_cache[itype, zone] = _spot_price_now(ec2, itype, zone, now)
            price = spot_cache[itype, zone]
        else:
            price = ON_DEMAND_USD_HOUR.get(itype)
        uptime = None
        if state == "running" and inst.get("LaunchTime"):
            uptime = max(0.0, (now - inst["LaunchTime"]).total_seconds() / 3600)
        cost = None
        if uptime is not None and price is not None:
            # EC2 bills Linux per second, with a one-minute minimum.
            cost = price * max(uptime, 1 / 60)
        reason = inst.get("StateReason", {}).get("Code") if state != "running" else None
        rows.append(
            {
                "instance_id": inst["InstanceId"],
                "name": host_name(cluster, inst["InstanceId"]),
                "state": state,
                "reason": reason,
                "market": market,
                "type": itype,
                "zone": zone,
                "address": inst.get("PublicIpAddress") or inst.get("PrivateIpAddress"),
                "price": price,
                "uptime_h": uptime,
                "cost": cost,
            }
        )
    return rows


def format_status(rows: list[dict]) -> str:
    """A table of `status` rows plus the running total, for the terminal."""
    if not rows:
        return "no instances"
    head = (
        "NAME",
        "INSTANCE",
        "STATE",
        "MARKET",
        "TYPE",
        "ZONE",
        "ADDRESS",
        "$/H",
        "UPTIME",
        "COST",
    )
    table = [head]
    for r in rows:
        state = r["state"] + (f" ({r['reason']})" if r["reason"] else "")
        table.append(
            (
                r["name"],
                r["instance_id"],
                state,
                r["market"],
                r["type"],
                r["zone"] or "-",
                r["address"] or "-",
                f"{r['price']:.4f}" if r["price"] is not None else "?",
                f"{r['uptime_h']:.2f}h" if r["uptime_h"] is not None else "-",
                f"${r['cost']:.2f}" if r["cost"] is not None else "-",
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    running = [r for r in rows if r["state"] == "running"]
    known = [r for r in running if r["cost"] is not None]
    hourly = sum(r["price"] for r in running if r["price"] is not None)
    lines.append(
        f"{len(running)} running, ~${hourly:.2f}/h now, ~${sum(r['cost'] for r in known):.2f} so far "
        f"(estimate: spot = current price, on-demand = us-east-1 list price"
        + (
            f"; {len(running) - len(known)} without a price"
            if len(known) < len(running)
            else ""
        )
        + ")"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------- prices


def prices(
    instance_type: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    days: float = 7.0,
    now: dt.datetime | None = None,
) -> dict:
    """Spot price history of an instance type, like ``starcluster spothistory``.

    Parameters
    ----------
    instance_type : str
        EC2 instance type.
    region, endpoint_url
        As for `up`.
    days : float
        How far back to look.
    now : datetime, optional
        End of the window (tests); default: now.

    Returns
    -------
    dict
        ``instance_type``, ``region``, ``days``, ``n`` (price records),
        ``current`` (the cheapest zone's latest price), ``current_zone``,
        ``average`` and ``max`` over the window's records, ``zones`` (each
        zone's latest price), and ``on_demand`` (approximate list price or None).

    Raises
    ------
    ConfigError
        On an unknown instance type or region, or when there is no history.
    """
    if isinstance(days, bool) or not (isinstance(days, int | float) and days > 0):
        raise ConfigError(
            f"--days: expected a positive number, got {days!r}. Fix: pass e.g. --days 7"
        )
    ec2 = _connect(region, endpoint_url)
    instance_type_info(ec2, instance_type)
    now = now or _now()
    hist = list(
        _pages(
            ec2,
            "describe_spot_price_history",
            "SpotPriceHistory",
            InstanceTypes=[instance_type],
            ProductDescriptions=LINUX_PRODUCTS,
            StartTime=now - dt.timedelta(days=days),
            EndTime=now,
        )
    )
    if not hist:
        raise ConfigError(
            f"--instance-type: no spot price history for {instance_type} in {ec2.region} "
            f"over {days:g} days. Fix: this type may not be sold on the spot market there; "
            "try another type or region"
        )
    latest: dict[str, dict] = {}
    for h in hist:
        z = h.get("AvailabilityZone", "?")
        if z not in latest or h["Timestamp"] > latest[z]["Timestamp"]:
            latest[z] = h
    zones = {z: float(h["SpotPrice"]) for z, h in sorted(latest.items())}
    values = [float(h["SpotPrice"]) for h in hist]
    cheapest = min(zones, key=zones.get)
    return {
        "instance_type": instance_type,
        "region": ec2.region,
        "days": days,
        "n": len(values),
        "current": zones[cheapest],
        "current_zone": cheapest,
        "average": statistics.fmean(values),
        "max": max(values),
        "zones": zones,
        "on_demand": ON_DEMAND_USD_HOUR.get(instance_type),
    }


def format_prices(p: dict) -> str:
    """The `prices` summary in the notebook's ``starcluster spothistory`` shape."""
    lines = [
        f"{p['instance_type']} in {p['region']}, spot, last {p['days']:g} days ({p['n']} records):",
        f">>> Current price: ${p['current']:.4f} ({p['current_zone']})",
        f">>> Max price: ${p['max']:.4f}",
        f">>> Average price: ${p['average']:.4f}",
    ]
    if p["on_demand"] is not None:
        lines.append(f"on-demand (us-east-1 list, approximate): ${p['on_demand']:.4f}")
    lines += [f"  {z}: ${v:.4f}" for z, v in p["zones"].items()]
    return "\n".join(lines)


# --------------------------------------------------------------------- down


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
        As for `up`.
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
    cluster = _check_cluster(cluster)
    path = _hosts_path(hosts_file)
    header, data = read_hosts_file(path) if path.exists() else ("", None)
    ec2 = _connect(region, endpoint_url)
    groups = cluster_groups(ec2, cluster)
    instances = cluster_instances(ec2, cluster)
    live = [i for i in instances if i["State"]["Name"] != "terminated"]
    ids = {i["InstanceId"] for i in instances}
    running = [i for i in live if i["State"]["Name"] == "running"]
    if fetch is not None and running:
        # Hosts-file entries first (they carry the user's edits), else what
        # the cluster was launched with.
        saved = _settings_of(groups[0]) if groups else {}
        entries = {
            h[MARKER]: h
            for h in (data or {}).get("hosts", [])
            if isinstance(h, dict) and MARKER in h
        }
        fetch(
            [
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
        )
    live_ids = [i["InstanceId"] for i in live]
    if live_ids:
        _call(ec2, "terminate_instances", InstanceIds=live_ids)
        _wait_terminated(ec2, live_ids, timeout, poll, progress)
    deleted = []
    for g in groups:
        _delete_group(ec2, g["GroupId"], timeout, poll)
        deleted.append(g["GroupId"])
    removed = []
    if data is not None:
        removed = [
            h["name"]
            for h in data["hosts"]
            if isinstance(h, dict) and h.get(MARKER) in ids
        ]
        if removed:
            data["hosts"] = [
                h
                for h in data["hosts"]
                if not (isinstance(h, dict) and h.get(MARKER) in ids)
            ]
            write_hosts_file(path, header, data)
    return DownResult(
        cluster=cluster,
        region=ec2.region,
        terminated=live_ids,
        security_groups=deleted,
        removed_hosts=removed,
        fetched=fetch is not None and bool(running),
    )


def _wait_terminated(
    ec2: _Ec2, ids: list[str], timeout: float, poll: float, progress: bool
) -> None:
    deadline = time.monotonic() + timeout
    with _progress(len(ids), "terminated", progress) as bar:
        done: set[str] = set()
        while True:
            for res in _pages(
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


def _delete_group(ec2: _Ec2, group_id: str, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _call(ec2, "delete_security_group", GroupId=group_id)
            return
        except Ec2Error as exc:
            # EC2 releases the group's network interfaces a little after the
            # instances terminate; until then the group is "in use".
            if exc.code != "DependencyViolation" or time.monotonic() > deadline:
                raise
        time.sleep(poll)
