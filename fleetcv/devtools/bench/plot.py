"""bench.png: scale and memory of a bench run, drawn from its results.

Runs on the laptop, after the bench, with matplotlib's Agg backend (no
display needed).
"""

from __future__ import annotations

from pathlib import Path


def plot_bench(results: dict, path: Path) -> Path:
    """Scale (wall time vs engines, with the ideal) and memory (PSS over time) side by side.

    Parameters
    ----------
    results : dict
        What `run_bench` writes to results.json.
    path : Path
        The PNG to write.

    Returns
    -------
    Path
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    _plot_scale(a, results["reference"])
    _plot_memory(b, results["memory"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_scale(a, ref: dict) -> None:
    sc = ref["scale"]
    a.plot([s["engines"] for s in sc], [s["wall"] for s in sc], "o-", label="fleetcv")
    a.plot(
        [s["engines"] for s in sc],
        [s["ideal"] for s in sc],
        "k--",
        label="sequential / engines",
    )
    hosts = ref.get("hosts") or {}
    if "wall" in hosts:
        a.plot(
            [hosts["engines"]],
            [hosts["wall"]],
            "s",
            color="tab:red",
            label=f"fleetcv, {hosts['hosts']} hosts over SSH",
        )
    a.set_xlabel("engines")
    a.set_ylabel("wall time (s)")
    a.set_title("reference search: scale")
    a.set_xticks([s["engines"] for s in sc])
    a.legend()


def _plot_memory(b, mem: dict) -> None:
    for name, key in (("fleetcv", "fleetcv"), ("sklearn loky", "sklearn_loky")):
        smp = mem[key]["samples"]
        b.plot([s["t"] for s in smp], [s["sum_pss"] / 1e6 for s in smp], label=name)
    b.axhline(mem["data_bytes"] / 1e6, color="k", ls=":", label="one copy of the data")
    b.set_xlabel("seconds")
    b.set_ylabel("summed worker PSS (MB)")
    b.set_title(
        f"memory, {mem['n_workers']} workers, {mem['data_bytes'] / 1e6:.0f} MB data"
    )
    b.legend()
