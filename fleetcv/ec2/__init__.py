"""Transient EC2 clusters on boto3: launch, grow, status, prices, tear down.

Runs on the laptop; talks only to the EC2 API. Everything after a launch
goes over SSH like any other host. What it produces is data: the host
entries of a hosts file, which the rest of fleetcv (fabfile.py, the fleetcv package)
then uses like any other hosts. This is the StarCluster part of the original
workflow (``starcluster start / addnode / spothistory / terminate``).

One concept per module, imported one way (each imports only those above it):

- ``typos``: did-you-mean for a mistyped region or instance type.
- ``api``: the boto3 connection, `Ec2Error` and the error mapping, paging.
- ``settings``: the defaults and `LaunchSettings`, built once from the flags.
- ``tags``: the ``fleetcv:cluster`` tag; a cluster's instances and group.
- ``catalog``: instance types, the default Ubuntu AMI, on-demand prices.
- ``hostsfile``: the EC2 entries of a hosts file.
- ``network``: the SSH network, this machine's address, the security group.
- ``waiting``: until instances run, terminate, answer on SSH.
- ``launch``: `up`, `grow`, `launch_cluster`.
- ``status``: `status`, `prices` and their tables.
- ``down``: `down`.

User-fixable problems raise `fleetcv.errors.ConfigError` (exit 2) with one
line naming the flag, the value and the fix; failures on the EC2 side
(quota, capacity, timeouts) raise `Ec2Error`, a `fleetcv.errors.HostError`
(exit 1).
"""

from fleetcv.ec2.api import ENDPOINT_ENV, Ec2Error
from fleetcv.ec2.catalog import ON_DEMAND_USD_HOUR
from fleetcv.ec2.down import DownResult, down, down_lines
from fleetcv.ec2.hostsfile import MARKER, host_entry, host_name
from fleetcv.ec2.launch import UpResult, grow, launch_cluster, launch_lines, up
from fleetcv.ec2.network import check_ssh_cidr, public_ip
from fleetcv.ec2.settings import (
    DEFAULT_CLUSTER,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_USER,
    DEFAULT_WORKDIR,
    LaunchSettings,
)
from fleetcv.ec2.status import format_prices, format_status, prices, status
from fleetcv.ec2.tags import TAG_CLUSTER
from fleetcv.ec2.waiting import default_wait_reachable

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_MAX_INSTANCES",
    "DEFAULT_USER",
    "DEFAULT_WORKDIR",
    "ENDPOINT_ENV",
    "MARKER",
    "ON_DEMAND_USD_HOUR",
    "TAG_CLUSTER",
    "DownResult",
    "Ec2Error",
    "LaunchSettings",
    "UpResult",
    "check_ssh_cidr",
    "default_wait_reachable",
    "down",
    "down_lines",
    "format_prices",
    "format_status",
    "grow",
    "host_entry",
    "host_name",
    "launch_cluster",
    "launch_lines",
    "prices",
    "public_ip",
    "status",
    "up",
]
