"""`run_bench`: the bench's entry point, from a local cluster to BENCHMARKS.md.

Runs on the laptop, called by tasks.py's `bench` task. It starts the
bench's own local cluster (on ports apart from a user's), runs every figure
on it, stops it, and writes results.json, bench.png and BENCHMARKS.md. The
backends for the hosts run (`fleetcv.backends.Backends`) are passed in by the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from fleetcv.devtools.bench.dispatch import bench_dispatch
from fleetcv.devtools.bench.environment import environment
from fleetcv.devtools.bench.fixed import bench_fixed_cost
from fleetcv.devtools.bench.hosts import Remote
from fleetcv.devtools.bench.markdown import render_markdown
from fleetcv.devtools.bench.memory import bench_memory
from fleetcv.devtools.bench.plot import plot_bench
from fleetcv.devtools.bench.reference import bench_reference
from fleetcv.devtools.bench.remote import bench_remote
from fleetcv.devtools.bench.scale import bench_scale
from fleetcv.devtools.bench.smarter import bench_smarter
from fleetcv.dispatch import cluster as cl
from fleetcv.spec import parse_hosts

#: The repository: BENCHMARKS.md lives at its root.
REPO = Path(__file__).resolve().parents[3]
#: Ports of the bench's own cluster, apart from a user's running one.
BENCH_PORTS = [30400, 30439]


def run_bench(
    engines: int | None = None,
    quick: bool = False,
    out_dir: str | os.PathLike = "bench",
    log=print,
    remote: Remote | None = None,
) -> dict:
    """Run every benchmark figure and write results.json, BENCHMARKS.md and a PNG.

    Parameters
    ----------
    engines : int, optional
        N, the engines and the loky workers (default: cores).
    quick : bool
        Smaller grid, smaller data, fewer runs (a few minutes on 2 cores).
    out_dir : path
        Where results.json and the PNG go; BENCHMARKS.md goes to the repo
        root when `out_dir` is the repo's bench/, else into `out_dir`.
    log : callable
        Progress lines.
    remote : object, optional
        The backends of the hosts run: anything with the Backend contract's
        `start_engines`, `push_splits` and `stop_engines` (the caller passes
        `fleetcv.backends.Backends()`). None: the hosts run is skipped and reported so
        in results.json (`reference.hosts.skipped`), as when the test
        cluster cannot be built on this machine.

    Returns
    -------
    dict
        Everything written to results.json: `command`, `quick`,
        `environment`, `reference`, `memory`, `dispatch`, `total_seconds`.
    """
    n = engines or os.cpu_count() or 1
    out = Path(out_dir)
    work = out / "work"
    shutil.rmtree(work / "runs", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    cfg = _local_config(n, work)
    if cl.is_running(cfg):
        cl.stop(cfg)
    start = time.perf_counter()
    log(f"bench: starting {n} engines")
    cl.start(cfg)
    client = cl.connect(cfg)
    try:
        cl.wait_for_engines(client, n)
        results = {
            "command": "invoke bench"
            + (f" --engines {engines}" if engines else "")
            + (" --quick" if quick else ""),
            "quick": quick,
            "environment": environment(client, n),
            "reference": bench_reference(client, n, quick, work, log, remote),
            "memory": bench_memory(client, n, quick, work, log),
            "dispatch": bench_dispatch(client, quick, work, log),
            "smarter": bench_smarter(client, quick, work, log),
            "fixed_cost": bench_fixed_cost(cfg, n, quick, work, log),
        }
    finally:
        client.close()
        cl.stop(cfg)
    # Clusters of its own, up to hundreds of engines: after the bench's is gone.
    results["scale"] = bench_scale(lambda k: _local_config(k, work), quick, work, log)
    results["remote"] = bench_remote(quick, work, log, remote)
    results["total_seconds"] = time.perf_counter() - start
    _write(results, out)
    return results


def _local_config(n: int, work: Path):
    """The bench's own cluster: N local engines, its own ports and state dir."""
    return parse_hosts(
        {
            "controller": {
                "ip": "127.0.0.1",
                "ports": BENCH_PORTS,
                "state_dir": str(work / "state"),
            },
            "hosts": [
                {
                    "name": "localhost",
                    "local": True,
                    "engines": n,
                    "workdir": str(work.resolve()),
                }
            ],
        },
        "<bench>",
    )


def _write(results: dict, out: Path) -> None:
    """results.json and bench.png into `out`; BENCHMARKS.md beside them or at the root."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    plot_bench(results, out / "bench.png")
    (
        REPO / "BENCHMARKS.md"
        if out.resolve() == (REPO / "bench").resolve()
        else out / "BENCHMARKS.md"
    ).write_text(render_markdown(results))


def summary_lines(results: dict, out_dir: str | os.PathLike = "bench") -> list[str]:
    """The headline figures of a bench run, as the `bench` task prints them.

    Parameters
    ----------
    results : dict
        What `run_bench` returned.
    out_dir : path
        Where `run_bench` wrote results.json and bench.png.

    Returns
    -------
    list of str
        Reference, memory and dispatch lines, then the files written.
    """
    ref, mem, dis = results["reference"], results["memory"], results["dispatch"]
    return [
        f"reference: fleetcv {ref['fleetcv_wall_seconds']:.2f} s vs sklearn "
        f"{ref['sklearn_wall_seconds']:.2f} s "
        f"(ratio {ref['wall_ratio_fleetcv_over_sklearn']:.3f}); efficiency fleetcv "
        f"{ref['fleetcv_efficiency']:.3f}, sklearn {ref['sklearn_efficiency']:.3f}",
        f"memory: peak worker PSS fleetcv {mem['fleetcv']['peak_sum_pss'] / 1e6:.0f} MB "
        f"vs loky {mem['sklearn_loky']['peak_sum_pss'] / 1e6:.0f} MB "
        f"(data {mem['data_bytes'] / 1e6:.0f} MB)",
        f"dispatch: {dis['tasks_per_second']:.0f} tasks/s "
        f"({dis['ms_per_task']:.2f} ms per task)",
        "smarter: "
        + ", ".join(
            f"{k} {results['smarter'][k]['wall_seconds']:.1f} s/{results['smarter'][k]['fits']} fits"
            f" (gap {results['smarter'][k]['gap']:.4f})"
            for k in ("grid", "halving", "asha", "optuna")
        ),
        _fixed_line(results["fixed_cost"], ref["peers"]),
        f"wrote {out_dir}/results.json, {out_dir}/bench.png",
    ]


def _fixed_line(fx: dict, peers: dict) -> str:
    """The fixed cost and the reference search against the best peer, in one line."""
    parts = [
        f"{mode} {fx[mode]['fleetcv']['median']:.2f} s (best peer {fx[mode]['best_peer']} "
        f"{fx[mode]['peers'][fx[mode]['best_peer']]['median']:.2f} s)"
        for mode in ("warm", "cold")
    ]
    return (
        f"fixed cost of a 2-fit search: fleetcv {', '.join(parts)}; reference search: "
        f"fleetcv / {peers['best_peer']} = {peers['ratio_to_best']:.3f}"
    )
