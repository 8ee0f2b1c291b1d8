"""The example notebook, run top to bottom by a real Jupyter kernel on real local engines.

nbclient starts an ipykernel (this venv's Python), which runs
examples/digits.ipynb as a user would: the notebook's search starts its own
cluster (the hosts file in $FLEETCV_HOSTS, ports of its own) and stops it.
The outputs it produced are checked: the report text, an image, the scores.
"""

from __future__ import annotations

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from runtime.dispatch import cluster as cl
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
