"""The tags that mark fleetcv's EC2 resources, and finding a cluster by them.

Runs on the laptop; talks only to the EC2 API. Everything fleetcv creates
carries the tag ``fleetcv:cluster=<name>``, and `down` deletes exactly what
carries that tag for that name: instances of other clusters, or untagged
ones, are never touched. The launch settings of a cluster (instance type,
market, AMI, key, subnet, user, workdir) are kept as ``fleetcv:<setting>``
tags of its security group, so `grow` needs nothing but a count.
"""

from __future__ import annotations

from typing import Any

from fleetcv.ec2.api import Ec2, call, pages

#: The tag that marks every resource fleetcv creates, with the cluster name as value.
TAG_CLUSTER = "fleetcv:cluster"
#: Tag prefix of the launch settings stored on a cluster's security group.
TAG_SETTING = "fleetcv:"


def tags_of(resource: dict) -> dict[str, str]:
    """The tags of an EC2 resource description, as a dict."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def cluster_tags(cluster: str) -> list[dict]:
    """The tags of a resource fleetcv creates for `cluster` (a TagSpecification's Tags)."""
    return [
        {"Key": TAG_CLUSTER, "Value": cluster},
        {"Key": "Name", "Value": f"fleetcv-{cluster}"},
    ]


def _cluster_filter(cluster: str) -> list[dict]:
    return [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster]}]


def cluster_instances(
    ec2: Ec2, cluster: str, states: list[str] | None = None
) -> list[dict]:
    """The instances tagged with this cluster name (all states unless given)."""
    filters = _cluster_filter(cluster)
    if states:
        filters.append({"Name": "instance-state-name", "Values": states})
    out = []
    for res in pages(ec2, "describe_instances", "Reservations", Filters=filters):
        out.extend(res.get("Instances", []))
    # The filter is the server's; check the tag here too, so that an endpoint
    # that ignores filters can never make `down` terminate someone else's instance.
    return [i for i in out if tags_of(i).get(TAG_CLUSTER) == cluster]


def cluster_groups(ec2: Ec2, cluster: str) -> list[dict]:
    """The security groups tagged with this cluster name."""
    groups = pages(
        ec2,
        "describe_security_groups",
        "SecurityGroups",
        Filters=_cluster_filter(cluster),
    )
    return [g for g in groups if tags_of(g).get(TAG_CLUSTER) == cluster]


def save_settings(ec2: Ec2, group_id: str, settings: dict[str, Any]) -> None:
    """Replace the launch settings stored on a security group with `settings`.

    Settings that are None are left out (and so forgotten).
    """
    call(
        ec2,
        "delete_tags",
        Resources=[group_id],
        Tags=[{"Key": TAG_SETTING + k} for k in settings],
    )
    tags = [
        {"Key": TAG_SETTING + k, "Value": str(v)}
        for k, v in settings.items()
        if v is not None
    ]
    call(ec2, "create_tags", Resources=[group_id], Tags=tags)


def settings_of(group: dict) -> dict[str, str]:
    """The launch settings stored on a security group (see `save_settings`)."""
    return {
        k[len(TAG_SETTING) :]: v
        for k, v in tags_of(group).items()
        if k.startswith(TAG_SETTING) and k != TAG_CLUSTER
    }
