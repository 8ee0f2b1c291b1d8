"""The example notebook, run top to bottom by a real Jupyter kernel on real local engines.

nbclient starts an ipykernel (this venv's Python), which runs
examples/digits.ipynb as a user would: the notebook's search starts its own
cluster (the hosts file in $FLEETCV_HOSTS, ports of its own) and stops it.
The outputs it produced are checked: the report text, an image, the scores.
A second test drives a kernel cell by cell (jupyter_client): a blocking fit's
live report (one output updated in place), and "interrupt kernel" in the
middle of a search, which leaves a run that a resumed fit finishes. A third
runs a notebook whose estimator class is defined in a cell (nbclient): it
reaches the engines by value and gives GridSearchCV's results.
"""

from __future__ import annotations

import json
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from fleetcv.dispatch import cluster as cl
from tests.conftest import REPO, local_hosts, write_local_hosts

pytestmark = pytest.mark.cluster

NOTEBOOK = os.path.join(REPO, "examples", "digits.ipynb")
PORTS = [30600, 30639]


def _text(cell) -> str:
    """What the cell printed (stdout; the cluster's log goes to stderr)."""
    return "".join(
        o.get("text", "")
        for o in cell.outputs
        if o.output_type == "stream" and o.get("name") == "stdout"
    )


def test_the_example_notebook_runs_and_shows_its_results(tmp_path, monkeypatch):
    hosts = write_local_hosts(tmp_path / "hosts.yml", tmp_path, ports=PORTS)
    monkeypatch.setenv("FLEETCV_HOSTS", str(hosts))  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    # While it ran, the report was the notebook's: progress and ranks.
    assert re.search(r"^(Progress|Finished): \d+% \(\d{3}/060\)", _text(code[1]), re.M)
    final = _text(code[2])
    assert (
        final.startswith("Finished: 100% (060/060)") and "Rank 1: validation: " in final
    )
    images = [o for o in code[3].outputs if "image/png" in o.get("data", {})]
    assert images, code[3].outputs
    best = _text(code[4])
    score = float(re.search(r"best validation score: (\d\.\d+)", best).group(1))
    test = float(re.search(r"test score: (\d\.\d+)", best).group(1))
    assert 0.9 < score <= 1.0 and 0.9 < test <= 1.0
    curve = re.findall(
        r"^ *(\d+) samples: train \d\.\d+  validation (\d\.\d+)$", _text(code[5]), re.M
    )
    assert [int(n) for n, _ in curve] == [107, 323, 646, 1077], curve
    assert float(curve[-1][1]) > 0.9
    # Its runs are in the notebook's folder; the cluster it started is gone.
    assert len(list((tmp_path / "runs").iterdir())) == 2
    assert not cl.is_running(local_hosts(tmp_path, ports=PORTS))


KERNEL_PORTS = [30640, 30679]
#: Wide enough that Ctrl-C lands mid-search: 30 candidates x 5 folds.
BIG_GRID = {"C": [0.01, 0.1, 1, 10, 100, 1000], "gamma": [1e-5, 1e-4, 1e-3, 1e-2, 0.1]}


def _run_cell(kc, code: str, timeout: float = 300, while_running=None):
    """Execute `code` in the kernel; (reply content, [(msg_type, content)] of its iopub).

    `while_running()` is called about every 0.2 s until the cell is idle.
    """
    import queue
    import time

    msg_id = kc.execute(code)
    outputs, deadline = [], time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"cell still running after {timeout} s"
        if while_running is not None:
            while_running()
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            break
        outputs.append((kind, content))
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], outputs


def test_a_fit_in_a_kernel_shows_a_live_table_and_interrupt_leaves_a_resumable_run(
    tmp_path,
):
    from jupyter_client.manager import start_new_kernel

    from fleetcv.rundir import journal as jn

    hosts = write_local_hosts(tmp_path / "hosts.yml", tmp_path, ports=KERNEL_PORTS)
    run = tmp_path / "interrupted"
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        reply, _ = _run_cell(
            kc,
            "from sklearn.datasets import load_digits\n"
            "from sklearn.svm import SVC\n"
            "from fleetcv import FleetSearchCV, start_cluster, stop_cluster\n"
            "X, y = load_digits(return_X_y=True)\n"
            f"HOSTS = {str(hosts)!r}\n"
            "start_cluster(HOSTS, engines=2, log=lambda line: None)\n",
        )
        assert reply["status"] == "ok", reply
        # A blocking fit: its report is one output, refreshed in place.
        reply, out = _run_cell(
            kc,
            "s = FleetSearchCV(SVC(), {'C': [0.1, 1, 10], 'gamma': [1e-3, 1e-2]}, "
            "cv=3, hosts=HOSTS, runs_root='runs').fit(X[:600], y[:600])",
        )
        assert reply["status"] == "ok", reply
        shown = [c for k, c in out if k == "display_data"]
        updates = [c for k, c in out if k == "update_display_data"]
        assert len(shown) == 1 and updates, [k for k, _ in out]
        display_id = shown[0]["transient"]["display_id"]
        assert {u["transient"]["display_id"] for u in updates} == {display_id}
        assert shown[0]["data"]["text/plain"].startswith("Progress: ")
        last = updates[-1]["data"]["text/plain"]
        assert last.startswith("Finished: 100% (018/018)") and "Rank 1: " in last
        bar = "".join(
            c["text"] for k, c in out if k == "stream" and c["name"] == "stderr"
        )
        assert "18/18" in bar, bar
        # "Interrupt kernel" mid-search: aborted, resumable.
        journal = run / jn.JOURNAL
        interrupted = []

        def interrupt_once_started():
            if (
                not interrupted
                and journal.exists()
                and len(journal.read_text().splitlines()) >= 5
            ):
                km.interrupt_kernel()
                interrupted.append(True)

        reply, out = _run_cell(
            kc,
            f"big = FleetSearchCV(SVC(), {BIG_GRID!r}, cv=5, hosts=HOSTS, "
            f"run_dir={str(run)!r}, verbose=0).fit(X, y)",
            while_running=interrupt_once_started,
        )
        assert interrupted and reply["status"] == "error", reply
        assert reply["ename"] == "SearchError", reply
        assert (
            "search aborted; the run stays resumable: FleetSearchCV(..., resume="
            in reply["evalue"]
        )
        done = len(jn.read_journal(journal))
        assert 5 <= done < 150
        assert json.loads((run / jn.META).read_text())["status"] == "aborted"
        reply, out = _run_cell(
            kc,
            f"again = FleetSearchCV(SVC(), {BIG_GRID!r}, cv=5, hosts=HOSTS, "
            f"resume={str(run)!r}, verbose=0).fit(X, y)\n"
            "print(len(again.cv_results_['params']), again.n_splits_)\n"
            "print(stop_cluster(HOSTS))",
        )
        assert reply["status"] == "ok", reply
        printed = "".join(
            c["text"] for k, c in out if k == "stream" and c["name"] == "stdout"
        )
        assert printed.split() == ["30", "5", "True"], printed
        assert len(jn.read_journal(journal)) == 150
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        cl.stop(local_hosts(tmp_path, ports=KERNEL_PORTS))


CELL_PORTS = [30680, 30719]
#: A notebook whose estimator class is defined in a cell (the kernel's
#: __main__, where no engine can import it): it travels by value.
OWN_CLASS_CELLS = [
    "import numpy as np\n"
    "from sklearn.base import BaseEstimator, ClassifierMixin\n"
    "from sklearn.datasets import load_digits\n"
    "from sklearn.model_selection import GridSearchCV\n"
    "from fleetcv import FleetSearchCV, start_cluster, stop_cluster\n"
    "X, y = load_digits(return_X_y=True)\n"
    "X, y = X[:300], y[:300]\n"
    "start_cluster(HOSTS, engines=2, log=lambda line: None)",
    "class Centroids(ClassifierMixin, BaseEstimator):\n"
    "    def __init__(self, shrink=0.0):\n"
    "        self.shrink = shrink\n"
    "    def fit(self, X, y):\n"
    "        self.classes_ = np.unique(y)\n"
    "        means = np.array([X[y == c].mean(0) for c in self.classes_])\n"
    "        self.centroids_ = (1 - self.shrink) * means + self.shrink * X.mean(0)\n"
    "        return self\n"
    "    def predict(self, X):\n"
    "        d = ((np.asarray(X)[:, None] - self.centroids_[None]) ** 2).sum(-1)\n"
    "        return self.classes_[d.argmin(1)]",
    "grid = {'shrink': [0.0, 0.5, 0.9]}\n"
    "ours = FleetSearchCV(Centroids(), grid, cv=3, hosts=HOSTS, verbose=0).fit(X, y)\n"
    "theirs = GridSearchCV(Centroids(), grid, cv=3).fit(X, y)\n"
    "print(np.array_equal(ours.cv_results_['mean_test_score'], "
    "theirs.cv_results_['mean_test_score']), ours.best_params_ == theirs.best_params_, "
    "type(ours.best_estimator_) is Centroids)\n"
    "print(stop_cluster(HOSTS))",
]


def test_a_class_defined_in_a_notebook_cell_runs_on_the_engines(tmp_path):
    hosts = write_local_hosts(tmp_path / "hosts.yml", tmp_path, ports=CELL_PORTS)
    cells = [f"HOSTS = {str(hosts)!r}", *OWN_CLASS_CELLS]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    try:
        NotebookClient(
            nb,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        ).execute()
    finally:
        cl.stop(local_hosts(tmp_path, ports=CELL_PORTS))
    assert _text(nb.cells[-1]).split() == ["True", "True", "True", "True"], _text(
        nb.cells[-1]
    )
