"""The cluster by host: engines grouped by host, and their memory probes.

`engine_probe` runs on every engine; `probe_cluster` (driver side) gathers
all of them in one DirectView call and groups them by host. USS is the memory
only that process holds; PSS splits shared pages (memmapped folds) between
the processes that map them, so the sum of PSS over a host is the real cost.
"""

from __future__ import annotations

import time
from collections import defaultdict

from fleetcv.dispatch.runner import get_result
from runtime.probe import engine_probe
from runtime.worker import engine_info

MB = 1e6


#: What engines_by_host files an engine under when it does not answer in time.
NO_ANSWER = "(no answer)"


def engines_by_host(client, ids=None, timeout: float = 60.0) -> dict[str, list[int]]:
    """Engine ids grouped by the host they run on.

    An engine that dies before it answers (its host or its tunnel gone: the
    controller's heartbeat drops it) is left out, so a status or a push
    still works while a host is lost; one that does not answer within
    `timeout` seconds (busy with a long fit, or hung) is listed under
    `NO_ANSWER`, never waited for longer.

    Parameters
    ----------
    client : ipyparallel.Client
        The cluster's client.
    ids : list of int, optional
        Only these engines (default: every registered one).
    timeout : float
        Seconds to wait for all of them together.
    """
    # ipyparallel is loaded by then (a client exists); importing it at the
    # top would cost every command line call half a second.
    from ipyparallel.error import EngineError

    ids = list(client.ids if ids is None else ids)
    ars = {eid: client[eid].apply_async(engine_info) for eid in ids}
    out: dict[str, list[int]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    for eid, ar in sorted(ars.items()):
        try:
            info = get_result(ar, timeout=max(0.0, deadline - time.monotonic()))
        except EngineError:
            continue
        except TimeoutError:
            out[NO_ANSWER].append(eid)
            continue
        out[info["host"]].append(eid)
    return dict(out)


def probe_cluster(client, timeout: float = 30.0) -> dict:
    """Probe every engine at once.

    Returns
    -------
    dict
        {"engines": {id: probe}, "hosts": {host: {available, total,
        engines, sum_rss, sum_uss, sum_pss}}}
    """
    ids = list(client.ids)
    if not ids:
        return {"engines": {}, "hosts": {}}
    engines = client[ids].apply_async(engine_probe).get_dict(timeout=timeout)
    hosts: dict[str, dict] = {}
    for _eid, p in sorted(engines.items()):
        h = hosts.setdefault(
            p["host"],
            {
                "available": p["host_available"],
                "total": p["host_total"],
                "engines": 0,
                "sum_rss": 0,
                "sum_uss": 0,
                "sum_pss": 0,
            },
        )
        h["engines"] += 1
        for k in ("rss", "uss", "pss"):
            h[f"sum_{k}"] += p[k]
    return {"engines": engines, "hosts": hosts}


def format_probe(probe: dict) -> str:
    """A per-host, per-engine table in MB."""
    lines = []
    for host, h in sorted(probe["hosts"].items()):
        lines.append(
            f"{host}: available {h['available'] / MB:,.0f} MB of {h['total'] / MB:,.0f} MB; "
            f"{h['engines']} engines, sum RSS {h['sum_rss'] / MB:,.1f} MB, "
            f"USS {h['sum_uss'] / MB:,.1f} MB, PSS {h['sum_pss'] / MB:,.1f} MB"
        )
        for eid, p in sorted(probe["engines"].items()):
            if p["host"] == host:
                lines.append(
                    f"  engine {eid:>3} pid {p['pid']:>7}: RSS {p['rss'] / MB:8.1f} MB  "
                    f"USS {p['uss'] / MB:8.1f} MB  PSS {p['pss'] / MB:8.1f} MB"
                )
    return "\n".join(lines) or "no engines registered"
