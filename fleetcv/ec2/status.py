"""What a cluster costs and what its instance type would: status, prices, their tables.

Runs on the laptop; talks only to the EC2 API (read-only: Describe* calls).
`status` lists a cluster's instances with market, price, uptime and an
estimated cost; `prices` summarizes an instance type's spot price history,
like ``starcluster spothistory``. The ``format_*`` functions turn either into
text for the terminal.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from fleetcv.ec2.api import Ec2, call, connect, pages
from fleetcv.ec2.catalog import LINUX_PRODUCTS, ON_DEMAND_USD_HOUR, instance_type_info
from fleetcv.ec2.hostsfile import host_name
from fleetcv.ec2.settings import DEFAULT_CLUSTER, check_cluster
from fleetcv.ec2.tags import cluster_instances
from fleetcv.errors import ConfigError

#: The columns of `format_status`.
_STATUS_HEAD = (
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _spot_price_now(
    ec2: Ec2, instance_type: str, zone: str | None, now: dt.datetime
) -> float | None:
    kwargs: dict[str, Any] = {
        "InstanceTypes": [instance_type],
        "ProductDescriptions": LINUX_PRODUCTS,
        "StartTime": now,
        "MaxResults": 20,
    }
    if zone:
        kwargs["AvailabilityZone"] = zone
    hist = call(ec2, "describe_spot_price_history", **kwargs).get(
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
        As for `up` (see `LaunchSettings`).
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
    cluster = check_cluster(cluster)
    ec2 = connect(region, endpoint_url)
    now = now or _now()
    spot_cache: dict[tuple[str, str | None], float | None] = {}

    def price_of(inst: dict) -> float | None:
        itype = inst["InstanceType"]
        if inst.get("InstanceLifecycle") != "spot":
            return ON_DEMAND_USD_HOUR.get(itype)
        zone = inst.get("Placement", {}).get("AvailabilityZone")
        if (itype, zone) not in spot_cache:
            spot_cache[itype, zone] = _spot_price_now(ec2, itype, zone, now)
        return spot_cache[itype, zone]

    return [
        _status_row(cluster, inst, price_of(inst), now)
        for inst in cluster_instances(ec2, cluster)
    ]


def _status_row(
    cluster: str, inst: dict, price: float | None, now: dt.datetime
) -> dict:
    """The `status` row of one instance."""
    state = inst["State"]["Name"]
    uptime = None
    if state == "running" and inst.get("LaunchTime"):
        uptime = max(0.0, (now - inst["LaunchTime"]).total_seconds() / 3600)
    cost = None
    if uptime is not None and price is not None:
        # EC2 bills Linux per second, with a one-minute minimum.
        cost = price * max(uptime, 1 / 60)
    return {
        "instance_id": inst["InstanceId"],
        "name": host_name(cluster, inst["InstanceId"]),
        "state": state,
        "reason": inst.get("StateReason", {}).get("Code")
        if state != "running"
        else None,
        "market": "spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand",
        "type": inst["InstanceType"],
        "zone": inst.get("Placement", {}).get("AvailabilityZone"),
        "address": inst.get("PublicIpAddress") or inst.get("PrivateIpAddress"),
        "price": price,
        "uptime_h": uptime,
        "cost": cost,
    }


def format_status(rows: list[dict]) -> str:
    """A table of `status` rows plus the running total, for the terminal.

    Parameters
    ----------
    rows : list of dict
        What `status` returned.

    Returns
    -------
    str
        One line per instance under a heading, then a total line; ``"no
        instances"`` for none.
    """
    if not rows:
        return "no instances"
    table = [_STATUS_HEAD]
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
    widths = [max(len(str(row[i])) for row in table) for i in range(len(_STATUS_HEAD))]
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
        As for `up` (see `LaunchSettings`).
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
    ec2 = connect(region, endpoint_url)
    instance_type_info(ec2, instance_type)
    now = now or _now()
    hist = list(
        pages(
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
    return {
        "instance_type": instance_type,
        "region": ec2.region,
        "days": days,
        **_summary(hist),
        "on_demand": ON_DEMAND_USD_HOUR.get(instance_type),
    }


def _summary(hist: list[dict]) -> dict:
    """``n``, ``current``, ``current_zone``, ``average``, ``max`` and ``zones`` of price records."""
    latest: dict[str, dict] = {}
    for h in hist:
        z = h.get("AvailabilityZone", "?")
        if z not in latest or h["Timestamp"] > latest[z]["Timestamp"]:
            latest[z] = h
    zones = {z: float(h["SpotPrice"]) for z, h in sorted(latest.items())}
    values = [float(h["SpotPrice"]) for h in hist]
    cheapest = min(zones, key=zones.__getitem__)
    return {
        "n": len(values),
        "current": zones[cheapest],
        "current_zone": cheapest,
        "average": statistics.fmean(values),
        "max": max(values),
        "zones": zones,
    }


def format_prices(p: dict) -> str:
    """The `prices` summary in the notebook's ``starcluster spothistory`` shape.

    Parameters
    ----------
    p : dict
        What `prices` returned.

    Returns
    -------
    str
        Current, max and average price, the on-demand price when known, and
        each zone's latest price, one per line.
    """
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
