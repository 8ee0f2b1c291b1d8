"""fleetcv reaches the hosts as a wheel; the driver refuses engines of another version.

A real network-namespace host (own sshd, IP and disk), a real
`invoke hosts.install` from an offline wheelhouse, real engines started over
SSH by `invoke cluster.start`. First the wheelhouse holds an older fleetcv
wheel (built from a copy of this tree with another `__version__`): the
engines run it, and `check_engine_versions` refuses them naming both
versions and the fix. Then the current wheel: the check passes and a search
gives GridSearchCV's scores. Plus the wheel itself: the package and its
metadata, no command line, no laptop-only dependency outside the extra.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fleetcv.dispatch import cluster as cl
from fleetcv.dispatch import wheelhouse as wheels
from fleetcv.dispatch.versions import check_engine_versions
from fleetcv.errors import EngineVersionError
from fleetcv.spec import load_hosts
from runtime import __version__, engine_version
from tests.conftest import (
    require_testcluster,
    run_invoke,
    stop_started,
    write_namespace_hosts,
)

PREFIX, SUBNET = "fin", "10.205.0"
PORTS = [30300, 30339]
OLD_VERSION = "0.0.1"
LAPTOP_ONLY = {"fabric", "invoke", "paramiko", "tqdm", "matplotlib", "boto3"}
VENV_PYTHON = "/srv/fleetcv/venv/bin/python"


def invoke(*args, timeout=600):
    proc = run_invoke(*args, timeout=timeout)
    assert proc.returncode == 0, (
        f"invoke {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc


def build_wheel_of_version(tmp: Path, version: str) -> Path:
    """This tree's fleetcv wheel, but saying `version`: what an older checkout built."""
    src = tmp / f"src-{version}"
    src.mkdir()
    for name in wheels.WHEEL_SOURCES:
        if (wheels.REPO / name).is_dir():
            shutil.copytree(
                wheels.REPO / name,
                src / name,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        else:
            shutil.copy2(wheels.REPO / name, src / name)
    init = src / "runtime" / "__init__.py"
    text, n = re.subn(
        r'^__version__ = "[^"]+"$',
        f'__version__ = "{version}"',
        init.read_text(),
        flags=re.M,
    )
    assert n == 1
    init.write_text(text)
    out = tmp / f"wheel-{version}"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, src],
        check=True,
    )
    (wheel,) = out.glob("fleetcv-*.whl")
    return wheel


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    require_testcluster()
    from fleetcv.devtools import testcluster

    tmp = tmp_path_factory.mktemp("install")
    state = testcluster.up(1, tmp / "tc", prefix=PREFIX, subnet=SUBNET)
    path = tmp / "hosts.yml"
    try:
        (h,) = state["hosts"]
        write_namespace_hosts(path, state, tmp, PORTS, engines=2)
        yield {
            "tmp": tmp,
            "hosts": str(path),
            "name": h["name"],
            "disk": Path(h["disk"]),
        }
    finally:
        if path.exists():
            cfg = load_hosts(path)
            if cl.is_running(cfg):
                stop_started(cfg)
        testcluster.down(state)


def connected(hosts: str, n: int):
    client = cl.connect(load_hosts(hosts))
    cl.wait_for_engines(client, n)
    return client


def installed_version(hosts: str) -> str:
    out = invoke(
        "hosts.run",
        f"{VENV_PYTHON} -c 'import runtime as e; print(e.__version__, e.__file__)'",
        "--hosts-file",
        hosts,
    ).stdout
    # The package imported is the installed wheel's, in the venv.
    assert "/srv/fleetcv/venv/lib/python3" in out and "/site-packages/runtime/" in out
    return out.split("] ", 1)[1].split()[0]


@pytest.mark.cluster
@pytest.mark.multihost
def test_engines_of_an_older_wheel_are_refused_naming_both_versions_and_the_fix(host):
    wheelhouse = wheels.build_wheelhouse()
    old = host["tmp"] / "wheelhouse-old"
    # Hard links: the same dependency wheels, only the fleetcv one differs.
    shutil.copytree(wheelhouse, old, copy_function=os.link)
    wheels.fleetcv_wheel(old).unlink()
    shutil.copy2(build_wheel_of_version(host["tmp"], OLD_VERSION), old)

    name, hosts = host["name"], host["hosts"]
    out = invoke("hosts.install", "--hosts-file", hosts, "--wheelhouse", str(old))
    assert (
        f"[{name}] installed into /srv/fleetcv/venv offline from the wheelhouse "
        f"(fleetcv {OLD_VERSION}," in out.stdout
    ), out.stdout
    assert installed_version(hosts) == OLD_VERSION
    # No source tree on the host: the wheel is the only fleetcv there.
    assert not (host["disk"] / "code").exists()
    assert not list(host["disk"].rglob("fabfile.py"))

    invoke("cluster.start", "--hosts-file", hosts)
    try:
        client = connected(hosts, 2)
        try:
            with pytest.raises(
                EngineVersionError,
                match=(
                    rf"engines on {name} \(engines 0, 1\) run fleetcv "
                    rf"{re.escape(OLD_VERSION)}, this driver is {re.escape(__version__)}\. "
                    rf"Fix: invoke hosts\.install --hosts-file {re.escape(hosts)} "
                    rf"--only {name}, then invoke cluster\.stop .* and invoke cluster\.start"
                ),
            ) as err:
                check_engine_versions(client, hosts_file=hosts)
            assert err.value.exit_code == 2
        finally:
            client.close()
    finally:
        invoke("cluster.stop", "--hosts-file", hosts)


@pytest.mark.cluster
@pytest.mark.multihost
def test_the_current_wheel_passes_the_check_and_searches_exactly(
    host, sklearn_reference
):
    name, hosts = host["name"], host["hosts"]
    # A new wheel (another version here, new code in general) reinstalls...
    out = invoke("hosts.install", "--hosts-file", hosts).stdout
    assert (
        f"[{name}] installed into /srv/fleetcv/venv offline from the wheelhouse "
        f"(fleetcv {__version__}," in out
    ), out
    assert installed_version(hosts) == __version__
    # ...and the same one does not.
    out = invoke("hosts.install", "--hosts-file", hosts).stdout
    assert (
        f"[{name}] venv up to date (same requirements), nothing installed: "
        f"fleetcv {__version__}" in out
    ), out

    invoke("cluster.start", "--hosts-file", hosts)
    try:
        client = connected(hosts, 2)
        try:
            assert check_engine_versions(client, hosts_file=hosts) == {
                0: __version__,
                1: __version__,
            }
            infos = client[:].apply_sync(engine_version)
            assert {i["python"] for i in infos} == {VENV_PYTHON}, infos
        finally:
            client.close()
        run_dir = host["tmp"] / "runs" / "current"
        proc = invoke(
            "search",
            "--hosts-file",
            hosts,
            "--run-dir",
            str(run_dir),
            "--no-progress",
        )
        assert "Finished: 100% (100/100)" in proc.stdout, proc.stdout
    finally:
        invoke("cluster.stop", "--hosts-file", hosts)
    res = json.loads((run_dir / "results.json").read_text())
    ref = sklearn_reference.cv_results_
    for key in ("mean_test_score", "std_test_score", "mean_train_score"):
        np.testing.assert_allclose(res[key], ref[key], rtol=0, atol=1e-12, err_msg=key)
    assert {res[f"split{k}_host"][c] for k in range(5) for c in range(20)} == {name}


@pytest.mark.cluster
def test_the_wheel_holds_the_package_and_keeps_laptop_tools_in_an_extra(tmp_path):
    wheel = wheels.build_fleetcv_wheel(tmp_path)
    assert wheel.name == f"fleetcv-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(f"fleetcv-{__version__}.dist-info/METADATA").decode()
    dist_info = f"fleetcv-{__version__}.dist-info/"
    assert {
        n for n in names if not n.startswith(("runtime/", "fleetcv/", dist_info))
    } == set()
    assert "runtime/__init__.py" in names and "runtime/launcher.py" in names
    assert "fleetcv/__init__.py" in names and "fleetcv/search_cv.py" in names
    assert not [n for n in names if "__pycache__" in n]
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, flags=re.M)
    core = [r for r in requires if "extra ==" not in r]
    laptop = [r.split(";")[0].strip() for r in requires if 'extra == "laptop"' in r]
    # What hosts get is the package's own dependencies, and nothing laptop-only.
    assert core == wheels.engine_requirements()
    assert not {re.split(r"[=<>!~ ]", r)[0].lower() for r in core} & LAPTOP_ONLY
    assert {"fabric==3.2.3", "invoke==2.2.1"} <= set(laptop)
