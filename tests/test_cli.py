"""The command line as a user runs it: `invoke search`, `invoke report`, and flag errors."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import RANDOM_SPEC, random_spec_reference, rendered, run_invoke

CLI_PORTS = [30100, 30139]


invoke = run_invoke


@pytest.fixture
def hosts_file(tmp_path):
    p = tmp_path / "hosts.yml"
    p.write_text(
        yaml.safe_dump(
            {
                "controller": {
                    "ip": "127.0.0.1",
                    "ports": CLI_PORTS,
                    "state_dir": str(tmp_path / "state"),
                },
                "hosts": [
                    {
                        "name": "localhost",
                        "local": True,
                        "engines": 2,
                        "workdir": str(tmp_path / "work"),
                    }
                ],
            }
        )
    )
    return str(p)


@pytest.mark.cluster
def test_search_prints_progress_and_report_and_writes_the_run(tmp_path, hosts_file):
    proc = invoke(
        "search",
        "--spec",
        RANDOM_SPEC,
        "--engines",
        "2",
        "--hosts-file",
        hosts_file,
        "--runs-root",
        str(tmp_path / "runs"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "100%" in proc.stderr and "fit/s" in proc.stderr  # the progress bar
    assert "Finished: 100% (050/050)" in proc.stdout
    assert "Rank 1: validation: " in proc.stdout and "Rank 5:" in proc.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("digits_svc_random-")
    for name in (
        "journal.jsonl",
        "results.json",
        "report.txt",
        "meta.json",
        "spec.yml",
    ):
        assert (run_dir / name).is_file(), name
    assert len((run_dir / "journal.jsonl").read_text().splitlines()) == 50
    # The search started the cluster, so it stopped it.
    assert (
        "no fleetcv cluster is running"
        in invoke("cluster.status", "--hosts-file", hosts_file).stderr
    )

    # `invoke report` rebuilds the same results from the journal alone.
    before = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").unlink()
    rep = invoke("report", str(run_dir))
    assert rep.returncode == 0, rep.stderr
    after = json.loads((run_dir / "results.json").read_text())
    assert after["mean_test_score"] == before["mean_test_score"]
    assert after["best_params"] == before["best_params"]
    assert rep.stdout.startswith("Finished: 100% (050/050)")


BAD_FLAGS = [
    (["search", "--n-iter", "0"], r"--n-iter: expected an integer >= 1, got '0'"),
    (["search", "--engines", "-2"], r"--engines: expected an integer >= 1, got '-2'"),
    (
        ["search", "--max-retries", "x"],
        r"--max-retries: expected an integer >= 0, got 'x'",
    ),
    (["search", "--spec", "nope.yml"], r"nope\.yml: search spec file not found"),
    (
        ["search", "--resume", "searches"],
        r"searches: not a fleetcv run directory \(no meta\.json\)",
    ),
    (["report", "searches"], r"searches: not a fleetcv run directory"),
    (
        ["search", "--hosts-file", "missing-hosts.yml"],
        r"missing-hosts\.yml: hosts file not found",
    ),
    (
        ["cluster.grow", "--engines", "0"],
        r"--engines: expected an integer >= 1, got '0'",
    ),
    (["cluster.install"], r"no package given"),
    (
        ["cluster.install", "--packages", "'numpy"],
        r"cannot read \"'numpy\" .*Fix: balance the quotes",
    ),
]


@pytest.mark.parametrize(
    "args,pattern", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS]
)
def test_bad_flags_give_one_clear_message(args, pattern, hosts_file):
    if "--hosts-file" not in args and args[0] != "report":
        args = [*args, "--hosts-file", hosts_file]
    proc = invoke(*args, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    import re

    assert re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_loopback_controller_with_remote_hosts_is_refused_unless_tunneled():
    from fleetcv.dispatch import fleet as cli
    from fleetcv.spec import ConfigError, parse_hosts

    data = {
        "controller": {"ip": "127.0.0.1"},
        "hosts": [{"name": "node1", "address": "ubuntu@10.0.0.11"}],
    }
    cfg = parse_hosts(data, "cluster.yml")
    with pytest.raises(
        ConfigError,
        match=r"cluster\.yml: controller\.ip: 127\.0\.0\.1 is this machine's loopback "
        r"address, which node1 cannot reach\. Fix: set controller\.ip to an address of "
        r"this machine that the hosts reach, or tunnel: true",
    ):
        cli.check_reachable(cfg, cfg.hosts)
    data["controller"]["tunnel"] = True
    cli.check_reachable(parse_hosts(data, "cluster.yml"), cfg.hosts)  # no error
    data["controller"] = {"ip": "10.0.0.5"}
    cli.check_reachable(parse_hosts(data, "cluster.yml"), cfg.hosts)  # no error


@pytest.mark.cluster
def test_the_python_api_runs_the_same_lifecycle_and_equals_sklearn(
    tmp_path, hosts_file
):
    import numpy as np

    from fleetcv import api

    search = api.search(
        RANDOM_SPEC,
        hosts_file=hosts_file,
        n_iter=4,
        runs_root=tmp_path / "runs",
        progress=False,
    )
    assert search.status == "finished" and search.n_done == 4 * 5
    (run_dir,) = (tmp_path / "runs").iterdir()
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["status"] == "finished"
    assert (rendered(run_dir) / "report.html").is_file()

    theirs = random_spec_reference(4)
    assert search.cv_results_["params"] == theirs.cv_results_["params"]
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        rtol=0,
        atol=1e-12,
    )
    assert search.best_params_ == theirs.best_params_
    # The API started the cluster for the run, and stopped it.
    assert (
        "no fleetcv cluster is running"
        in invoke("cluster.status", "--hosts-file", hosts_file).stderr
    )


def test_shared_flags_fall_back_to_invoke_configuration(tmp_path):
    from invoke import Config, Context, Exit

    import tasks

    bad = tmp_path / "from-config.yml"
    bad.write_text(
        yaml.safe_dump({"hosts": [{"name": "x", "local": True, "cores": 1}]})
    )
    c = Context(Config(overrides={"fleetcv": {"hosts_file": str(bad)}}))
    # No --hosts-file: the configured one is read (and refused, naming it).
    with pytest.raises(
        Exit, match=r"from-config\.yml: hosts\[0\]\.cores: unknown key"
    ) as e:
        tasks.cluster_status(c)
    assert e.value.code == 2
    # A flag still wins over the configuration.
    good = tmp_path / "flag.yml"
    good.write_text(
        yaml.safe_dump(
            {
                "controller": {"state_dir": str(tmp_path / "state")},
                "hosts": [{"name": "localhost", "local": True, "engines": 1}],
            }
        )
    )
    with pytest.raises(Exit, match="no fleetcv cluster is running") as e:
        tasks.cluster_status(c, hosts_file=str(good))
    assert e.value.code == 1
