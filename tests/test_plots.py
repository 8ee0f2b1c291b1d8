"""Plots and the HTML report, unit level: synthetic runs, real PNG files opened and inspected."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from invoke import Context, Exit
from matplotlib.image import imread

import tasks
from fleetcv.dispatch.lifecycle import rebuild
from fleetcv.kinds import curves
from fleetcv.report import plots
from fleetcv.report.html import REPORT_HTML, finish_run, host_summary, write_report_html
from fleetcv.rundir import journal as jn
from fleetcv.rundir import results as rs

N_FOLDS = 3
GRID = [
    {"C": c, "gamma": g} for c in (0.1, 1.0, 10.0, 100.0) for g in (1e-4, 1e-3, 1e-2)
]
TRACEBACK = "Traceback (most recent call last):\nValueError: <b>C</b> & gamma clash"
SPEC = "name: synthetic\n# a comment with markup: <script>alert(1)</script>\nestimator: {class: sklearn.svm.SVC}\n"


def _score(params: dict, k: int) -> float:
    gamma, c = params.get("gamma", 1e-3), params.get("C", 1.0)
    return 0.9 - 0.1 * abs(np.log10(gamma) + 3) + 0.01 * k + 0.001 * np.log10(c)


def _records(candidates, n_folds=N_FOLDS, fail=None, train_size=None):
    recs = []
    t = 1_800_000_000.0
    for c, p in enumerate(candidates):
        for k in range(n_folds):
            t += 0.5
            host = "h1" if (c + k) % 3 else "h2"
            pid = 100 + (c + k) % 2 + (10 if host == "h2" else 0)
            failed = fail == (c, k)
            score = _score(p, k)
            if train_size:
                score -= 0.2 / np.sqrt(p[curves.TRAIN_SIZE_KEY])
            recs.append(
                {
                    "candidate": c,
                    "fold": k,
                    "params": p,
                    "status": "fit_failed" if failed else "ok",
                    "error": TRACEBACK if failed else None,
                    "test_score": float("nan") if failed else score,
                    "train_score": float("nan") if failed else min(1.0, score + 0.05),
                    "fit_time": 0.1 + 0.01 * c,
                    "score_time": 0.01,
                    "host": host,
                    "pid": pid,
                    "rss": 150_000_000 + 1000 * c,
                    "peak_rss": 151_000_000 + 1000 * c,
                    "finished": t,
                    "engine": pid % 2,
                }
            )
    return recs


def _run_dir(tmp_path, name, meta: dict, records) -> object:
    d = tmp_path / name
    d.mkdir()
    jn.write_json(
        d / jn.META,
        {
            "run_id": name,
            "spec_name": "synthetic",
            "n_folds": N_FOLDS,
            "status": "finished",
            "command": "invoke search --spec 'searches/a b.yml' --n-iter 3",
            "created": "2026-01-01T00:00:00+0000",
            **meta,
        },
    )
    j = jn.Journal(d / jn.JOURNAL)
    for r in records:
        j.append(r)
    j.close()
    (d / jn.SPEC_COPY).write_text(SPEC)
    return d


def _check_png(path, size_inches) -> np.ndarray:
    """The PNG exists, has the size the figure asked for, and is not blank."""
    img = imread(path)
    w, h = size_inches
    assert img.shape[:2] == (round(h * plots.DPI), round(w * plots.DPI)), path
    rgb = img[..., :3]
    assert rgb.std() > 0.01, f"{path}: blank"
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"{path}: {len(colours)} colours only"
    return img


@pytest.fixture
def cv_results():
    return rs.build_cv_results(GRID, N_FOLDS, _records(GRID, fail=(5, 1)))


def test_boxplot_parameters_one_row_per_parameter(cv_results, tmp_path):
    path = plots.boxplot_parameters(cv_results, tmp_path)
    assert path == tmp_path / plots.BOXPLOT_PNG
    _check_png(path, plots.boxplot_figsize(2))
    only_val = plots.boxplot_parameters(
        cv_results, tmp_path, display_train=False, filename="val.png"
    )
    _check_png(only_val, plots.boxplot_figsize(2))

    # Train boxes add orange pixels that the validation-only plot lacks.
    def n_orange(p):
        r, g, b = np.moveaxis(imread(p)[..., :3], 2, 0)
        return int(((r > 0.9) & (g > 0.4) & (g < 0.8) & (b < 0.6)).sum())

    assert n_orange(path) > 200 and n_orange(only_val) == 0


def test_boxplot_bins_a_randomized_search(tmp_path):
    rng = np.random.default_rng(0)
    cands = [
        {"C": float(10 ** rng.uniform(-1, 2)), "gamma": float(10 ** rng.uniform(-4, 0))}
        for _ in range(40)
    ]
    res = rs.build_cv_results(cands, N_FOLDS, _records(cands))
    index, labels = plots.value_groups(res["param_C"])
    assert len(labels) == plots.N_BINS and set(index) == set(range(plots.N_BINS))
    _check_png(plots.boxplot_parameters(res, tmp_path), plots.boxplot_figsize(2))
    _check_png(plots.heatmap(res, tmp_path), plots.FIGSIZE)


def test_boxplot_refuses_results_without_splits(tmp_path):
    res = rs.build_cv_results(GRID, N_FOLDS, [])
    with pytest.raises(ValueError, match="no finished split to plot"):
        plots.boxplot_parameters(res, tmp_path)


def test_heatmap_of_any_two_parameters(cv_results, tmp_path):
    path = plots.heatmap(cv_results, tmp_path)
    assert path.name == "heatmap_C_gamma.png"
    _check_png(path, plots.FIGSIZE)
    swapped = plots.heatmap(
        cv_results, tmp_path, param_x="gamma", param_y="C", filename="swapped.png"
    )
    _check_png(swapped, plots.FIGSIZE)
    one = rs.build_cv_results(
        [{"C": c} for c in (1.0, 2.0)], N_FOLDS, _records([{"C": 1.0}, {"C": 2.0}])
    )
    with pytest.raises(ValueError, match="needs two parameters"):
        plots.heatmap(one, tmp_path)
    with pytest.raises(ValueError, match="no parameter 'kernel'"):
        plots.heatmap(cv_results, tmp_path, param_x="kernel", param_y="C")


def _learning_curve_results():
    d = curves.learning_definition([30, 100, 300, 900], {"C": 10.0})
    recs = _records(curves.curve_candidates(d), train_size=True)
    return curves.curve_results(d, N_FOLDS, recs), d, recs


def test_learning_curve_plot(tmp_path):
    curve, _, _ = _learning_curve_results()
    _check_png(plots.plot_learning_curve(curve, tmp_path), plots.FIGSIZE)


@pytest.mark.parametrize(
    "name,values",
    [("C", [0.01, 0.1, 1.0, 10.0]), ("kernel", ["linear", "rbf", "poly"])],
)
def test_validation_curve_plot_numeric_and_categorical(tmp_path, name, values):
    d = curves.validation_definition(name, values, {"gamma": 0.001})
    curve = curves.curve_results(d, N_FOLDS, _records(curves.curve_candidates(d)))
    _check_png(plots.plot_validation_curve(curve, tmp_path), plots.FIGSIZE)


def test_memory_plot_from_probe_samples_and_from_the_journal(tmp_path):
    samples = []
    for i in range(20):
        for j, host in enumerate(("node1", "node2")):
            samples.append(
                {
                    "t": 1000.0 + 2 * i,
                    "host": host,
                    "available": (8e9 - 1e8 * i) * (1 + j),
                    "sum_pss": 4e8 + 1e7 * i + 5e7 * j,
                }
            )
    path = plots.plot_memory(samples, tmp_path)
    _check_png(path, plots.MEMORY_FIGSIZE)
    journal = plots.samples_from_journal(_records(GRID))
    assert {"t", "host", "pid", "rss"} == set(journal[0])
    _check_png(plots.plot_memory(journal, tmp_path, "j.png"), plots.MEMORY_FIGSIZE)
    # probe_cluster()'s shape converts to the same samples.
    probe = {
        "hosts": {
            "node1": {
                "available": 1,
                "total": 2,
                "engines": 2,
                "sum_rss": 3,
                "sum_uss": 4,
                "sum_pss": 5,
            }
        }
    }
    assert plots.probe_samples(probe, t=7.0) == [
        {
            "t": 7.0,
            "host": "node1",
            "available": 1,
            "total": 2,
            "sum_pss": 5,
            "sum_rss": 3,
            "sum_uss": 4,
            "engines": 2,
        }
    ]
    with pytest.raises(ValueError, match="no sample has any of available"):
        plots.plot_memory([{"t": 1.0, "host": "a"}], tmp_path)


def _search_run(tmp_path):
    return _run_dir(
        tmp_path,
        "search-run",
        {"candidates": GRID, "spec_digest": "x", "split_digest": "d1"},
        _records(GRID, fail=(5, 1))
        + [{"candidate": 0, "fold": 0, "status": "error", "error": "engine lost"}],
    )


def test_plot_run_writes_every_plot_of_a_search(tmp_path):
    d = _search_run(tmp_path)
    written = plots.plot_run(d)
    assert sorted(p.name for p in written) == [
        "heatmap_C_gamma.png",
        "memory.png",
        "params_boxplot.png",
    ]
    (d / plots.PROBES).write_text(
        "".join(
            json.dumps({"t": float(i), "host": "h1", "available": 1e9 - i * 1e6}) + "\n"
            for i in range(5)
        )
        + '{"t": 9, "ho'  # a torn last line is skipped
    )
    assert plots.read_probe_samples(d / plots.PROBES)[-1]["t"] == 4.0
    assert d / "memory.png" in plots.plot_run(d)


@pytest.mark.parametrize("kind", [curves.LEARNING, curves.VALIDATION])
def test_plot_run_writes_the_curve_of_a_curve_run(tmp_path, kind):
    if kind == curves.LEARNING:
        _, d, recs = _learning_curve_results()
        png = plots.LEARNING_PNG
    else:
        d = curves.validation_definition("C", [0.1, 1.0, 10.0], {"gamma": 0.001})
        recs = _records(curves.curve_candidates(d))
        png = plots.VALIDATION_PNG
    run = _run_dir(
        tmp_path,
        "curve-run",
        {"kind": kind, "curve": d, "candidates": curves.curve_candidates(d)},
        recs,
    )
    out = finish_run(run)
    assert sorted(p.name for p in out["plots"]) == sorted([png, plots.MEMORY_PNG])
    html = out["report"].read_text()
    title = "Learning curve" if kind == curves.LEARNING else "Validation curve of C"
    assert title in html
    # The curve rebuilt from the journal alone, as `invoke report` would.
    rebuild(run)
    rebuilt = json.loads((run / jn.RESULTS).read_text())
    assert rebuilt["n_done"] == len(recs) and rebuilt["kind"] == kind
    assert (run / jn.REPORT).read_text().startswith("Finished: 100%")


def test_report_html_is_one_self_contained_page(tmp_path):
    d = _search_run(tmp_path)
    out = finish_run(d)
    page = out["report"]
    assert page == d / REPORT_HTML
    html = page.read_text()
    # Nothing fetched from anywhere: no remote src/href, no script at all.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower().replace("&lt;script", "")
    # Every plot inlined, each a valid PNG.
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(out["plots"]) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    # The spec and the command, escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "invoke search --spec &#x27;searches/a b.yml&#x27; --n-iter 3" in html
    # Top-k table, failures with the first traceback, per-host timing and memory.
    assert "Top 10 of 12 candidates" in html
    assert "1 failed fits" in html and "1 task errors" in html
    assert "ValueError: &lt;b&gt;C&lt;/b&gt; &amp; gamma clash" in html
    hosts = host_summary(jn.read_journal(d / jn.JOURNAL))
    assert set(hosts) == {"h1", "h2"} and sum(h["fits"] for h in hosts.values()) == 36
    assert hosts["h1"]["engines"] == 2
    assert hosts["h1"]["peak_rss"] == max(
        r["peak_rss"] for r in jn.read_journal(d / jn.JOURNAL) if r.get("host") == "h1"
    )
    assert '<td class="l">h1</td><td>2</td>' in html


def test_report_html_of_a_run_with_nothing_finished(tmp_path):
    d = _run_dir(tmp_path, "empty", {"candidates": GRID}, [])
    assert plots.plot_run(d, log=lambda m: None) == []
    html = write_report_html(d).read_text()
    assert "No fit has finished yet" in html and "None: every fit succeeded" in html


def test_plot_task_regenerates_plots_and_report(tmp_path, capsys):
    d = _search_run(tmp_path)
    tasks.plot(Context(), str(d))
    out = capsys.readouterr().out
    assert f"wrote {d / 'params_boxplot.png'}" in out
    assert f"wrote {d / REPORT_HTML}" in out
    with pytest.raises(
        Exit, match=r"not a fleetcv run directory \(no meta.json\)"
    ) as e:
        tasks.plot(Context(), str(tmp_path))
    assert e.value.code == 2
