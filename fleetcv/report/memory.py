"""Memory samples of a run and their plot: per host (probes) or per engine (journal).

Runs on the driver (the laptop), during or after a run; never on the engines.
A sample is a plain dict `{t, host, ...}`: `probe_samples` turns a
`fleetcv.dispatch.probes.probe_cluster` result into per-host samples, which a
sampler appends to the run's probes.jsonl (`write_probe_samples`); a run
without one falls back to the RSS each journal record carries
(`samples_from_journal`). `plot_memory` draws either.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from fleetcv.report.figure import new_figure, save_png
from fleetcv.rundir.journal import read_journal

#: Width x height (inches) of the memory plot, whatever the number of panels.
MEMORY_FIGSIZE = (8.0, 6.0)
#: Probe sample fields plotted by `plot_memory`, in panel order.
MEMORY_KEYS = ("available", "sum_pss", "sum_rss", "rss")
MB = 1e6
#: A run directory's probe samples, one JSON sample per line (see plot_memory).
PROBES = "probes.jsonl"

MEMORY_PNG = "memory.png"

_MEMORY_TITLES = {
    "available": "available memory per host",
    "sum_pss": "sum of the engines' PSS per host (shared pages split between engines)",
    "sum_rss": "sum of the engines' RSS per host (shared pages counted once per engine)",
    "rss": "RSS of each engine after each task (journal; shared pages in every engine)",
}


def probe_samples(probe: dict, t: float | None = None) -> list[dict]:
    """Turn one `fleetcv.dispatch.probes.probe_cluster` result into per-host samples.

    Parameters
    ----------
    probe : dict
        `probe_cluster`'s result (`hosts`: host -> its memory figures).
    t : float, optional
        The samples' time (seconds since the epoch); default: now.

    Returns
    -------
    list of dict
        One `{t, host, available, total, sum_pss, sum_rss, sum_uss,
        engines}` per host, in `plot_memory`'s shape.
    """
    t = time.time() if t is None else t
    return [
        {
            "t": t,
            "host": host,
            "available": h["available"],
            "total": h["total"],
            "sum_pss": h["sum_pss"],
            "sum_rss": h["sum_rss"],
            "sum_uss": h["sum_uss"],
            "engines": h["engines"],
        }
        for host, h in sorted(probe["hosts"].items())
    ]


def samples_from_journal(records: Iterable[dict]) -> list[dict]:
    """Per-engine memory samples from a journal, for runs without probe samples.

    Each record carries the RSS of its engine when the task ended. A host
    total cannot be rebuilt from that honestly (engines report at different
    times, and come and go across a resume), so the samples stay per engine.

    Parameters
    ----------
    records : iterable of dict
        Journal records.

    Returns
    -------
    list of dict
        `{t, host, pid, rss}` samples in time order.
    """
    rows = sorted(
        (r for r in records if r.get("finished") and r.get("rss") and r.get("host")),
        key=lambda r: r["finished"],
    )
    return [
        {"t": r["finished"], "host": r["host"], "pid": r.get("pid"), "rss": r["rss"]}
        for r in rows
    ]


def read_probe_samples(path: str | os.PathLike) -> list[dict]:
    """Read a probes.jsonl file (one sample per line; torn lines skipped)."""
    return read_journal(path, required=("t", "host"))


def write_probe_samples(path: str | os.PathLike, samples: list[dict]) -> None:
    """Append samples to a probes.jsonl file (what a memory sampler should call)."""
    with open(path, "a", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")


def run_samples(run_dir: str | os.PathLike, records: Iterable[dict]) -> list[dict]:
    """A run's memory samples: its probes.jsonl if it has one, else its journal's.

    Parameters
    ----------
    run_dir : path
        The run directory.
    records : iterable of dict
        Its journal records.

    Returns
    -------
    list of dict
    """
    # Probe samples measure the host; the journal only each engine's RSS.
    probes_file = Path(run_dir) / PROBES
    if probes_file.is_file():
        return read_probe_samples(probes_file)
    return samples_from_journal(records)


def _memory_panel(ax, samples: list[dict], key: str, t0: float, color: dict) -> None:
    """One quantity over time: a line per host, or per engine of a host."""
    lines: dict[tuple, list] = {}
    for s in samples:
        if s.get(key) is not None:
            lines.setdefault((s["host"], s.get("pid")), []).append(
                (s["t"] - t0, s[key] / MB)
            )
    labelled = set()
    for (host, _pid), pts in sorted(lines.items(), key=lambda kv: str(kv[0])):
        xs, ys = zip(*sorted(pts), strict=True)
        # One legend entry per host, however many engines it has.
        label = host if host not in labelled else None
        labelled.add(host)
        ax.plot(xs, ys, "o-", ms=2.5, lw=1.2, color=color[host], label=label)
    ax.set_ylabel("MB")
    ax.set_title(_MEMORY_TITLES[key], fontsize="medium")
    ax.grid(True, alpha=0.4)


def plot_memory(
    samples: list[dict], out_dir: str | os.PathLike, filename: str = MEMORY_PNG
) -> Path:
    """Memory over time per host (or per engine), one panel per quantity present.

    Parameters
    ----------
    samples : list of dict
        Each `{"t": seconds since the epoch, "host": name, "available":
        bytes, "sum_pss": bytes}`: `available` is the host's free memory
        (psutil's `available`), `sum_pss` and `sum_rss` are summed over the
        host's engines. Every quantity is optional; a panel is drawn for
        each one some sample has. A sample with a `pid` and an `rss` is one
        engine's: its line is drawn in its host's colour.
        `probe_samples` and `samples_from_journal` build this shape.
    out_dir : path
        Directory to write into.
    filename : str
        Name of the PNG.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        When no sample has a memory value.
    """
    keys = [k for k in MEMORY_KEYS if any(s.get(k) is not None for s in samples)]
    if not keys:
        raise ValueError(f"plot_memory: no sample has any of {', '.join(MEMORY_KEYS)}")
    # matplotlib: imported once a plot is drawn (see figure.new_figure).
    import matplotlib as mpl

    t0 = min(s["t"] for s in samples)
    hosts = sorted({s["host"] for s in samples})
    palette = mpl.colormaps["tab10"].colors
    color = {h: palette[i % len(palette)] for i, h in enumerate(hosts)}
    fig = new_figure(MEMORY_FIGSIZE)
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, key in zip(axes, keys, strict=True):
        _memory_panel(ax, samples, key, t0, color)
    axes[0].legend(loc="best", fontsize="small", ncols=min(4, len(hosts)))
    axes[-1].set_xlabel("seconds since the first sample")
    return save_png(fig, out_dir, filename)
