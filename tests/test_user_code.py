"""A spec's `code:`: the user's own modules, snapshotted by digest and imported by the engines.

A project folder beside the spec holds a package of the user's (a
transformer class, a metric and its scorer). Searches of that spec on real
local engines equal GridSearchCV with the same code imported here; after the
code changes, the next run imports the new code on the same engines (no stale
module); a resume refuses changed code; bad `code:` entries and import paths
that nothing provides are one clear error each.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from fleetcv import api
from fleetcv.errors import ConfigError, HostError
from fleetcv.rundir import journal as jn
from fleetcv.spec import load_dataset, load_hosts, load_search_spec
from runtime import usercode
from tests.conftest import write_local_hosts
from tests.reference import assert_equals_reference, reference

#: The user's transformer, version 1 and 2 (a different transform).
TRANSFORM = {
    1: "return np.asarray(X, dtype=float) * self.factor",
    2: "return np.sqrt(np.asarray(X, dtype=float)) * self.factor",
}


def write_project(root: Path, version: int) -> Path:
    """The user's project: userfeat/ (a transformer, a metric) and the spec beside it."""
    pkg = root / "userfeat"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "transform.py").write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            from sklearn.base import BaseEstimator, TransformerMixin


            class Scale(TransformerMixin, BaseEstimator):
                def __init__(self, factor=1.0):
                    self.factor = factor

                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    {TRANSFORM[version]}
            """
        )
    )
    # The scorer is named by import path: each engine imports it from the code.
    (pkg / "metrics.py").write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            from sklearn.metrics import make_scorer

            WEIGHT = {version}


            def weighted_accuracy(y_true, y_pred):
                return WEIGHT * float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


            scorer = make_scorer(weighted_accuracy)
            """
        )
    )
    spec = root / "spec.yml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "usercode",
                "code": ["userfeat/"],
                "estimator": {
                    "pipeline": [
                        {"name": "scale", "class": "userfeat.transform.Scale"},
                        {
                            "name": "clf",
                            "class": "sklearn.linear_model.LogisticRegression",
                            "params": {"max_iter": 300},
                        },
                    ]
                },
                "params": {"scale__factor": [0.1, 1.0], "clf__C": [0.1, 1.0]},
                "data": {"loader": "sklearn.datasets.load_iris"},
                "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
                "scoring": "userfeat.metrics.scorer",
            },
            sort_keys=False,
        )
    )
    return spec


@pytest.fixture
def hosts_file(local_cluster, tmp_path):
    cfg, _ = local_cluster
    return str(
        write_local_hosts(tmp_path / "hosts.yml", cfg.controller.state_path.parent)
    )


def run(spec: Path, hosts_file: str, run_dir: Path, **kw):
    return api.search(
        spec, hosts_file=hosts_file, run_dir=run_dir, progress=False, **kw
    )


def check_equals_gridsearchcv(spec_file: Path, run_dir: Path) -> dict:
    # Loading the spec imports its code here (the same snapshot as the engines').
    spec = load_search_spec(spec_file)
    grid = reference(spec)
    assert_equals_reference(spec, run_dir, grid, load_dataset(spec).X)
    return json.loads((run_dir / jn.RESULTS).read_text())


@pytest.mark.cluster
def test_a_specs_own_code_runs_on_the_engines_and_new_code_replaces_old(
    hosts_file, tmp_path
):
    project = tmp_path / "project"
    spec = write_project(project, 1)
    first = tmp_path / "runs" / "v1"
    job = run(spec, hosts_file, first)
    assert job.status == "finished"
    v1 = check_equals_gridsearchcv(spec, first)
    assert max(v1["mean_test_score"]) <= 1.0  # WEIGHT = 1
    meta = json.loads((first / jn.META).read_text())
    assert meta["code"]["entries"] == ["userfeat"]
    assert v1["code"] == meta["code"]  # results.json says what code ran
    digest1 = meta["code"]["digest"]
    workdir = load_hosts(hosts_file).local_host.workdir_path
    local = Path(workdir) / usercode.CODE_SUBDIR / digest1
    assert (local / usercode.SUMS).is_file() and (
        local / "userfeat" / "metrics.py"
    ).is_file()

    # The user edits the code: the next run on the same engines uses the new one.
    write_project(project, 2)
    second = tmp_path / "runs" / "v2"
    run(spec, hosts_file, second)
    v2 = check_equals_gridsearchcv(spec, second)
    digest2 = json.loads((second / jn.META).read_text())["code"]["digest"]
    assert digest2 != digest1
    # WEIGHT = 2 in the new metrics module: every engine imported it again.
    # (a score above 1 is impossible with WEIGHT = 1)
    assert max(v2["mean_test_score"]) > 1.0, v2["mean_test_score"]
    assert v2["mean_test_score"] != [2 * s for s in v1["mean_test_score"]]

    # A resume of the first run now finds other code: refused, the run untouched.
    before = (first / jn.JOURNAL).read_text()
    with pytest.raises(
        ConfigError,
        match=r"the spec's code: changed since the run started \(code digest "
        rf"{digest2} != {digest1}\): resuming would mix results of two versions",
    ):
        run(spec, hosts_file, None, resume=first)
    assert (first / jn.JOURNAL).read_text() == before


def test_a_code_entry_that_does_not_exist_is_one_clear_error(tmp_path):
    spec = write_project(tmp_path, 1)
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, "code": ["userfeat/", "helpers.py"]}))
    with pytest.raises(
        ConfigError,
        match=r"spec\.yml: code\[1\]: 'helpers\.py' does not exist \(looked for .*helpers\.py\)"
        r"\. Fix: give a folder or \.py file of your project, relative to the spec's folder",
    ):
        load_search_spec(spec)


def test_an_import_path_that_no_code_provides_is_one_clear_error(tmp_path):
    spec = write_project(tmp_path, 1)
    data = yaml.safe_load(spec.read_text())
    # The class is the user's, but code: does not list its folder.
    spec.write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "code"}))
    with pytest.raises(
        ConfigError,
        match=r"cannot import 'userfeat\.transform\.Scale' \(No module named 'userfeat'\): "
        r"no installed package and nothing in the spec's code: provides it\. Fix: .*"
        r"for your own module, list its folder or \.py file under code:",
    ):
        load_search_spec(spec)


@pytest.mark.parametrize(
    "code,pattern",
    [
        ("userfeat/transform.py", None),
        ([], r"code: expected a list of paths, got \[\]"),
        (
            ["userfeat/", "other/userfeat"],
            r"code\[1\]: 'other/userfeat' has the same name as code\[0\]",
        ),
        (["data.csv"], r"code\[0\]: 'data\.csv' is neither a folder nor a \.py file"),
    ],
)
def test_code_entries_are_checked(tmp_path, code, pattern):
    spec = write_project(tmp_path, 1)
    (tmp_path / "other" / "userfeat").mkdir(parents=True)
    (tmp_path / "data.csv").write_text("a\n1\n")
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, "code": code}))
    if pattern is None:
        # One module file: importable as its name, so the package path fails.
        with pytest.raises(
            ConfigError, match=r"cannot import 'userfeat\.transform\.Scale'"
        ):
            load_search_spec(spec)
    else:
        with pytest.raises(ConfigError, match=pattern):
            load_search_spec(spec)


def make_wheel(
    dest: Path, version: str = "0.1", requires_python: str | None = None
) -> Path:
    """A pure-Python wheel of `fleetcv_extra_demo` (a transformer, `Double`), written by hand."""
    import base64
    import hashlib
    import zipfile

    name = "fleetcv_extra_demo"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": textwrap.dedent(
            """
            import numpy as np
            from sklearn.base import BaseEstimator, TransformerMixin


            class Double(TransformerMixin, BaseEstimator):
                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    return 2.0 * np.asarray(X, dtype=float)
            """
        ),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + (f"Requires-Python: {requires_python}\n" if requires_python else ""),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fleetcv-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
        record.append(
            f"{path},sha256={digest.rstrip(b'=').decode()},{len(text.encode())}"
        )
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def requirements_spec(root: Path, wheel: Path, uses_it: bool = True) -> Path:
    """A spec whose pipeline uses the wheel's transformer, the wheel under requirements:."""
    first = (
        {"name": "double", "class": "fleetcv_extra_demo.Double"}
        if uses_it
        else {"name": "double", "class": "sklearn.preprocessing.StandardScaler"}
    )
    spec = root / "reqs.yml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "reqs",
                "requirements": [str(wheel.relative_to(root))],
                "estimator": {
                    "pipeline": [
                        first,
                        {
                            "name": "clf",
                            "class": "sklearn.linear_model.LogisticRegression",
                            "params": {"max_iter": 300},
                        },
                    ]
                },
                "params": {"clf__C": [0.1, 1.0]},
                "data": {"loader": "sklearn.datasets.load_iris"},
                "cv": {"kind": "kfold", "n_splits": 3, "random_state": 0},
            },
            sort_keys=False,
        )
    )
    return spec


@pytest.mark.cluster
def test_a_requirement_no_host_can_install_stops_the_run_before_any_task(
    hosts_file, tmp_path
):
    # The wheel wants a Python no host has: every host refuses it, by name.
    wheel = make_wheel(tmp_path / "wheels", requires_python=">=3.99")
    spec = requirements_spec(tmp_path, wheel, uses_it=False)
    run_dir = tmp_path / "runs" / "reqs"
    with pytest.raises(
        HostError,
        match=r"requirements: pip could not install on localhost: .*requires a different "
        r"Python.*\. Fix: a requirement these hosts can install .*no task was submitted",
    ):
        run(spec, hosts_file, run_dir)
    assert not (run_dir / jn.JOURNAL).exists() or not jn.read_journal(
        run_dir / jn.JOURNAL
    )
    meta = json.loads((run_dir / jn.META).read_text())
    assert meta["requirements"]["lines"] == [wheel.name]


def test_requirements_are_checked(tmp_path):
    wheel = make_wheel(tmp_path / "wheels")
    spec = requirements_spec(tmp_path, wheel, uses_it=False)
    data = yaml.safe_load(spec.read_text())
    for value, pattern in [
        (["missing.whl"], r"requirements\[0\]: 'missing\.whl' does not exist"),
        (
            ["lightgbm==4.6.0", "=oops"],
            r"requirements\[1\]: '=oops' is not a pip requirement",
        ),
        ([], r"requirements: expected a list of lines, got \[\]"),
    ]:
        spec.write_text(yaml.safe_dump({**data, "requirements": value}))
        with pytest.raises(ConfigError, match=pattern):
            load_search_spec(spec)


def test_a_requirement_this_machine_cannot_get_stops_before_the_run(tmp_path):
    from fleetcv.dispatch import requirements as reqs

    with pytest.raises(
        ConfigError,
        match=r"requirements: pip could not get /.*/nowhere-0\.1-py3-none-any\.whl on "
        r"this machine: .*Fix: check the names and versions",
    ):
        reqs.prepare((str(tmp_path / "nowhere-0.1-py3-none-any.whl"),), tmp_path)
    # It worked in reqs/ and left nothing there: no wheelhouse named by a digest.
    assert (tmp_path / reqs.REQS_SUBDIR).is_dir()
    assert not list((tmp_path / reqs.REQS_SUBDIR).iterdir())
