"""One static report page per run: runs/<run-id>/report.html.

Runs on the driver, at the end of `invoke search` / `invoke curves.*` and on
`invoke plot RUN_DIR`. The page is a single file: the PNGs are inlined as
base64 data URIs and the style sits in a <style> element, with no script and
no external resource, so it opens offline, from a mail attachment or an
archive. It shows the plots, the top-k table (or the curve's table), the
failures with the first traceback, per-host timing and memory from the
journal, the spec, and the exact command to reproduce the run.
"""

from __future__ import annotations

import base64
import html
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from fleetcv.kinds import kind_of
from fleetcv.kinds.curves import curve_labels
from fleetcv.kinds.search import best_of
from fleetcv.report.memory import MB
from fleetcv.report.plots import plot_run, run_data, run_results
from fleetcv.report.search_plots import param_names
from fleetcv.rundir import journal as jn
from fleetcv.rundir import results as rs
from runtime import record

REPORT_HTML = "report.html"
#: Rows of the top-k table on the page (the text report shows results.TOP_K).
HTML_TOP_K = 10

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .9em; }
figure { display: inline-block; margin: .5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
.meta { color: #555; } .bad { color: #a00; }
"""


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _num(v, fmt: str = ".5f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def host_summary(records: list[dict]) -> dict[str, dict]:
    """Per-host work and memory from journal records.

    Returns
    -------
    dict
        host -> `fits` (finished fits, failed ones included), `engines`
        (distinct pids), `fit_time` (total seconds), `mean_fit_time`,
        `peak_rss` (largest peak RSS of one engine, bytes) and
        `sum_peak_rss` (sum over engines of each one's peak: an upper
        bound of what the host's engines held, shared pages counted once
        per engine).
    """
    out: dict[str, dict] = {}
    peaks: dict[str, dict] = {}
    for r in records:
        if not record.is_finished(r):
            continue
        host = r.get("host") or "?"
        h = out.setdefault(host, {"fits": 0, "fit_time": 0.0, "pids": set()})
        h["fits"] += 1
        h["fit_time"] += float(r.get("fit_time") or 0.0)
        h["pids"].add(r.get("pid"))
        if r.get("peak_rss"):
            p = peaks.setdefault(host, {})
            p[r.get("pid")] = max(p.get(r.get("pid"), 0), r["peak_rss"])
    for host, h in out.items():
        p = peaks.get(host, {})
        h["engines"] = len(h.pop("pids"))
        h["mean_fit_time"] = h["fit_time"] / h["fits"] if h["fits"] else math.nan
        h["peak_rss"] = max(p.values()) if p else None
        h["sum_peak_rss"] = sum(p.values()) if p else None
    return dict(sorted(out.items()))


def _table(head: list[str], rows: list[list[str]], left: int = 0) -> str:
    """An HTML table; cells are already escaped; the first `left` columns align left."""

    def cls(i: int) -> str:
        return ' class="l"' if i < left else ""

    out = ["<table><tr>"]
    out += [f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(head)]
    out.append("</tr>")
    for row in rows:
        out.append(
            "<tr>"
            + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row))
            + "</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _search_section(res: dict, top_k: int, best: tuple) -> str:
    names = param_names(res)
    order = sorted(
        (i for i, n in enumerate(res.get("n_finished_splits", [])) if n),
        key=lambda i: (res["rank_test_score"][i], i),
    )
    if not order:
        return "<p>No fit has finished yet.</p>"
    idx, params, score = best
    parts = []
    if params is not None:
        what = (
            f"<b>{_num(score)}</b> mean validation score"
            if score is not None
            else f"candidate {idx} (picked by the refit callable)"
        )
        parts.append(
            f"<p>Best: {what} with <code>{_e(rs.params_text(params))}</code></p>"
        )
    train = "mean_train_score" in res
    head = ["rank", "validation", "+/- std", "+/- sem"]
    head += ["train", "+/- std"] if train else []
    head += ["fit time (s)", "splits", "failed", *names]
    rows = []
    for i in order[:top_k]:
        row = [
            _e(res["rank_test_score"][i]),
            _num(res["mean_test_score"][i]),
            _num(res["std_test_score"][i]),
            _num(res["sem_test_score"][i]),
        ]
        if train:
            row += [_num(res["mean_train_score"][i]), _num(res["std_train_score"][i])]
        row += [
            _num(res["mean_fit_time"][i], ".3f"),
            _e(res["n_finished_splits"][i]),
            _e(res["n_failed_fits"][i]),
            *[_e(_short(res[f"param_{n}"][i])) for n in names],
        ]
        rows.append(row)
    shown = min(top_k, len(order))
    parts.append(
        f"<h2>Top {shown} of {len(order)} candidates</h2>"
        + _table(head, rows)
        + "<p class=meta>Mean and population std over the splits, as "
        "scikit-learn's cv_results_; sem = standard error of the mean.</p>"
    )
    return "".join(parts)


def _iterations_section(its: list[dict] | None) -> str:
    """A halving search's iterations (an ASHA search's rungs): one row each."""
    if not its:
        return ""
    rows = [
        [
            str(it["iter"]),
            str(it["n_resources"]),
            str(it["n_candidates"]),
            str(it["n_finished"]),
            _num(it["best_score"]),
        ]
        for it in its
    ]
    head = ["iteration", "resources", "candidates", "finished", "best mean test score"]
    return "<h2>Iterations</h2>" + _table(head, rows)


def _short(v) -> str:
    """A table cell's value: floats to 6 digits, strings as they are, others as Python prints them."""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v if isinstance(v, str) else rs.value_text(v)


def _curve_section(curve: dict) -> str:
    title, col, labels = curve_labels(curve, _short)
    rows = [
        [
            _e(label),
            _num(curve["test_scores_mean"][i]),
            _num(curve["test_scores_std"][i]),
            _num(curve["train_scores_mean"][i]),
            _num(curve["train_scores_std"][i]),
            _num(curve["fit_times_mean"][i], ".3f"),
            _e(curve["n_finished_splits"][i]),
            _e(curve["n_failed_fits"][i]),
        ]
        for i, label in enumerate(labels)
    ]
    fixed = (
        f"<p>Fixed parameters: <code>{_e(curve['params'])}</code></p>"
        if curve.get("params")
        else "<p>Fixed parameters: the spec's estimator as written.</p>"
    )
    head = [col, "validation", "+/- std", "train", "+/- std", "fit time (s)"]
    return (
        f"<h2>{_e(title)}</h2>{fixed}"
        + _table([*head, "splits", "failed"], rows)
        + "<p class=meta>Mean and population std over the folds, as plotted.</p>"
    )


def _failures_section(records: list[dict]) -> str:
    failed = [r for r in records if r.get("status") == record.FIT_FAILED]
    errors = [r for r in records if r.get("status") == record.ERROR]
    if not failed and not errors:
        return "<h2>Failures</h2><p>None: every fit succeeded.</p>"
    parts = ["<h2>Failures</h2><ul>"]
    if failed:
        parts.append(
            f"<li class=bad>{len(failed)} failed fits (scored error_score): "
            "the tracebacks are in journal.jsonl, field <code>error</code>.</li>"
        )
    if errors:
        parts.append(
            f"<li class=bad>{len(errors)} task errors (no score, e.g. an engine "
            "lost; a resume runs them again).</li>"
        )
    parts.append("</ul>")
    first = next(r for r in records if r.get("error"))
    parts.append(
        f"<p>First traceback (candidate {_e(first.get('candidate'))}, fold "
        f"{_e(first.get('fold'))}, host {_e(first.get('host', '?'))}):</p>"
        f"<pre>{_e(first['error'])}</pre>"
    )
    return "".join(parts)


def _hosts_section(records: list[dict]) -> str:
    hosts = host_summary(records)
    if not hosts:
        return ""
    total = sum(h["fits"] for h in hosts.values()) or 1
    rows = [
        [
            _e(host),
            _e(h["engines"]),
            _e(h["fits"]),
            f"{100 * h['fits'] / total:.0f}%",
            _num(h["fit_time"], ".1f"),
            _num(h["mean_fit_time"], ".3f"),
            _num(h["peak_rss"] / MB if h["peak_rss"] else None, ".1f"),
            _num(h["sum_peak_rss"] / MB if h["sum_peak_rss"] else None, ".1f"),
        ]
        for host, h in hosts.items()
    ]
    head = [
        "host",
        "engines",
        "fits",
        "share",
        "total fit time (s)",
        "mean fit time (s)",
        "peak RSS of one engine (MB)",
        "sum of engine peaks (MB)",
    ]
    return (
        "<h2>Hosts</h2>"
        + _table(head, rows, left=1)
        + "<p class=meta>From journal.jsonl. RSS counts the memmapped folds, which "
        "the engines of a host share, once per engine: the sum of peaks is an "
        "upper bound of the host's use (<code>invoke probe.memory</code> shows "
        "PSS).</p>"
    )


def _data_section(data: dict) -> str:
    """How the engines of a host hold the data: mapped once, or a copy each."""
    if not data.get("nbytes"):
        return ""
    shared = data.get("shared_bytes") or 0
    own = data["nbytes"] - shared
    text = (
        f"The folds hold {data.get('X_kind', '?')} data: {shared / MB:.1f} MB of arrays "
        "memory-mapped, one copy in RAM per host shared by its engines"
    )
    if own > 0:
        text += (
            f"; {own / MB:.1f} MB of strings, categories or objects, which cannot be "
            "mapped: each engine holds its own copy of a fold's share of them"
        )
    return f"<h2>Data in memory</h2><p>{_e(text)}.</p>"


def _plots_section(plots: list[Path]) -> str:
    if not plots:
        return ""
    parts = ["<h2>Plots</h2>"]
    for p in plots:
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{_e(Path(p).stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(Path(p).name)}</figcaption></figure>"
        )
    return "".join(parts)


def write_report_html(
    run_dir: str | os.PathLike,
    plots: list[Path] | None = None,
    top_k: int = HTML_TOP_K,
    data: dict | None = None,
) -> Path:
    """Write runs/<run-id>/report.html, one self-contained static page.

    Parameters
    ----------
    run_dir : path
        A run directory (has meta.json).
    plots : list of path, optional
        PNGs to embed; default: every *.png in the run directory.
    top_k : int
        Rows of the search's top-k table.
    data : dict, optional
        `fleetcv.report.plots.run_data(run_dir)`, when the caller has it already.

    Returns
    -------
    Path
        The page written.

    Raises
    ------
    ConfigError
        When `run_dir` is not a run directory.
    """
    path = Path(run_dir)
    data = data or run_data(path)
    meta, records = data["meta"], data["records"]
    if plots is None:
        plots = sorted(path.glob("*.png"))
    kind = kind_of(meta)
    res = run_results(data)
    n_tasks = kind.n_tasks(meta, meta["n_folds"])
    n_done = sum(res["n_finished_splits"])
    if kind.style == "search":
        # Several metrics: the table shows the one that ranks candidates.
        view = rs.metric_view(res, meta.get("ranking") or "score")
        body = _search_section(view, top_k, best_of(meta, res)) + _iterations_section(
            kind.summary(meta, res).get("iterations")
        )
    else:
        body = _curve_section(res)
    spec_file = path / jn.SPEC_COPY
    spec_text = spec_file.read_text() if spec_file.is_file() else "(no spec.yml)"
    what = kind.name.replace("_", " ")
    title = f"fleetcv {what}: {meta.get('run_id', path.name)}"
    summary = (
        f"{_e(what)} of <b>{_e(meta.get('spec_name', '?'))}</b>, "
        f"status <b>{_e(meta.get('status', '?'))}</b>, {n_done}/{n_tasks} fits, "
        f"{_e(meta.get('n_folds', '?'))} folds (splits {_e(meta.get('split_digest', '?'))}), "
        f"created {_e(meta.get('created', '?'))}"
    )
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><p class=meta>{summary}</p>",
        "<h2>Reproduce</h2>",
        f"<pre>{_e(meta.get('command') or '(command not recorded)')}</pre>",
        body,
        _plots_section(plots),
        _failures_section(records),
        _hosts_section(records),
        _data_section(meta.get("data") or {}),
        "<h2>Spec</h2>",
        f"<pre>{_e(spec_text)}</pre>",
        f"<p class=meta>Written {_e(time.strftime('%Y-%m-%d %H:%M:%S'))} from "
        f"{_e(jn.JOURNAL)} ({len(records)} records).</p>",
        "</body></html>",
    ]
    out = path / REPORT_HTML
    jn.write_text(out, "\n".join(page))
    return out


def finish_run(
    run_dir: str | os.PathLike, log: Callable[[str], None] | None = None
) -> dict:
    """Write every plot of a run and its report.html (end of `invoke search` / `curves.*`).

    Parameters
    ----------
    run_dir : path
        A run directory.
    log : callable, optional
        Receives a line per plot that could not be drawn.

    Returns
    -------
    dict
        `plots` (list of PNG paths) and `report` (the HTML page's path).
    """
    data = run_data(run_dir)
    plots = plot_run(run_dir, log=log, data=data)
    return {"plots": plots, "report": write_report_html(run_dir, plots, data=data)}
