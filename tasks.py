"""fleetcv's command line: `invoke --list` shows every task, `invoke --help TASK` its flags.

Runs on the laptop. Each task parses its flags, loads the configuration,
calls runtime/ (model selection) or fabfile.py (anything on a remote host),
and prints. Errors a user can fix end as one message and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from invoke import Collection, Exit

import assess_tasks
from ec2_tasks import ec2
from runtime.dispatch import cluster as cl
from runtime.dispatch import fleet as cli
from runtime.dispatch import lifecycle as driver
from runtime.dispatch.probes import engines_by_host, format_probe, probe_cluster
from runtime.rundir import journal as jn
from runtime.rundir import results as rs
from runtime.spec import ConfigError, HostsConfig, load_hosts, load_search_spec

DEFAULT_SPEC = cli.DEFAULT_SPEC
HOSTS_HELP = cli.HOSTS_HELP


def _hosts(hosts_file: str | None) -> HostsConfig:
    return load_hosts(hosts_file)


# ------------------------------------------------------------------ cluster


@cli.fleet_task(
    name="start",
    help={
        "engines": "engines on this machine (default: the local host's `engines`, auto = one per core)",
        "hosts-file": HOSTS_HELP,
    },
)
def cluster_start(c, engines=None, hosts_file=None):
    """Start the controller and the engines of every host in the hosts file."""
    cfg = _hosts(hosts_file)
    cli.start_cluster(cfg, cli.int_flag("--engines", engines))


@cli.fleet_task(name="stop", help={"hosts-file": HOSTS_HELP})
def cluster_stop(c, hosts_file=None):
    """Stop every engine (by the pids recorded at start) and the controller."""
    cfg = _hosts(hosts_file)
    print("cluster stopped" if cli.stop_cluster(cfg) else "no cluster was running")


@cli.fleet_task(name="status", help={"hosts-file": HOSTS_HELP})
def cluster_status(c, hosts_file=None):
    """Show the controller and, per host, engines registered vs. running."""
    cfg = _hosts(hosts_file)
    if not cl.is_running(cfg):
        raise Exit("no fleetcv cluster is running. Try: invoke cluster.start", code=1)
    client = cl.connect(cfg)
    try:
        by_host = engines_by_host(client)
    finally:
        client.close()
    running = {}
    if cfg.remote_hosts:
        res = cli.remote().engine_status(cfg, cfg.remote_hosts)
        running = dict(res.ok)
        for h, exc in res.failed.items():
            print(f"{h}: unreachable: {exc}")
    if cfg.local_host:
        running[cfg.local_host.name] = len(
            [p for p in cl.local_engine_pids(cfg) if cli.alive(p)]
        )
    print(
        f"controller: {cfg.controller.ip} ports {cfg.controller.ports[0]}-{cfg.controller.ports[1]}, profile {cl.profile_dir(cfg)}"
    )
    for h in cfg.hosts:
        line = f"{h.name}: {len(by_host.get(h.name, []))} engines registered, {running.get(h.name, '?')} running"
        if cfg.controller.tunnel and not h.local:
            pid = cli.remote().tunnel_pid(h, cfg)
            line += (
                f", tunnel up (ssh pid {pid})"
                if pid
                else f", tunnel DOWN: its engines cannot reach the controller "
                f"(invoke cluster.grow --only {h.name})"
            )
        print(line)
    for h, eids in by_host.items():
        if h not in {x.name for x in cfg.hosts}:
            print(f"{h}: {len(eids)} engines registered (not in {cfg.path})")


def _running_split_dirs(cfg: HostsConfig, runs_root: str) -> list[Path]:
    """Split directories of the searches running under runs_root (driver alive)."""
    out = []
    for m in Path(runs_root).glob(f"*/{jn.META}"):
        try:
            meta = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("status") == "running" and cli.alive(meta.get("driver_pid") or 0):
            path = driver.staging_workdir(cfg) / "splits" / meta["split_digest"]
            if path.is_dir() and path not in out:
                out.append(path)
    return out


@cli.fleet_task(
    name="grow",
    help={
        "engines": "how many engines to add on each chosen host (default 1)",
        "runs-root": "where running searches are looked up, to push their folds to new hosts (default runs/)",
        "only": "comma-separated host names (default: every host of the hosts file)",
        "hosts-file": HOSTS_HELP,
    },
)
def cluster_grow(
    c, engines=None, only=None, hosts_file=None, runs_root=driver.DEFAULT_RUNS_ROOT
):
    """Add engines (or new hosts of the hosts file) to a running cluster; a running search uses them at once."""
    cfg = _hosts(hosts_file)
    hosts = cfg.only(only)
    n = cli.int_flag("--engines", engines if engines is not None else 1)
    local = [h for h in hosts if h.local]
    remote = [h for h in hosts if not h.local]
    cli.check_reachable(cfg, remote)
    if remote:
        # A new host must hold the folds of the searches running now, or
        # every task the view hands it would fail.
        fab = cli.remote()
        for split_path in _running_split_dirs(cfg, runs_root):
            res = fab.push_splits(cfg, split_path, remote)
            fab.print_results(res)
            remote = [h for h in remote if h.name not in res.failed]
    if local:
        total = cl.start_local_engines(cfg, n)
        print(f"{local[0].name}: +{n} engines ({total} registered)")
    if remote:
        _report_hosts(
            cli.remote().start_engines(cfg, remote, count=n), "starting engines"
        )


@cli.fleet_task(
    name="install",
    help={
        "packages": "pip requirement(s) to install, space-separated in one argument "
        "(e.g. 'lightgbm==4.6.0 xgboost')",
        "hosts-file": HOSTS_HELP,
    },
)
def cluster_install(c, packages=None, hosts_file=None):
    """pip-install packages on a running cluster, once per host (its engines share the venv)."""
    from runtime.engine.worker import pip_install

    # One argument, split here: Invoke takes no variable number of positionals.
    try:
        packages = shlex.split(packages or "")
    except ValueError as exc:
        raise ConfigError(
            f"cluster.install: cannot read {packages!r} ({exc}). Fix: balance the quotes"
        ) from exc
    if not packages:
        raise ConfigError(
            "cluster.install: no package given. Fix: invoke cluster.install --packages PACKAGE, "
            "or several in quotes: --packages 'PACKAGE1 PACKAGE2'"
        )
    cfg = _hosts(hosts_file)
    client = cl.connect(cfg)
    try:
        by_host = engines_by_host(client)
        ars = {
            h: client[eids[0]].apply_async(pip_install, packages=list(packages))
            for h, eids in by_host.items()
        }
        failed = []
        for h, ar in ars.items():
            out = ar.get()
            status = (
                "ok" if out["returncode"] == 0 else f"failed (exit {out['returncode']})"
            )
            print(f"[{h}] pip install {' '.join(packages)}: {status}")
            if out["returncode"]:
                failed.append(h)
                for line in out["output"].splitlines()[-5:]:
                    print(f"[{h}]   {line}")
    finally:
        client.close()
    if failed:
        raise Exit(f"pip install failed on {', '.join(failed)}", code=1)


# ------------------------------------------------------------------- search


@cli.fleet_task(
    name="run",
    default=True,
    help={
        "spec": f"search spec (YAML), default {DEFAULT_SPEC}",
        "engines": "engines on this machine when the search starts the cluster (default: one per core)",
        "run-dir": "run directory (default: runs/<spec name>-<date>-<time>)",
        "n-iter": "number of candidates to draw (randomized search; on a grid: a random subset)",
        "resume": "RUN_DIR of an interrupted run: evaluate only what its journal lacks",
        "max-retries": "resubmissions of a task whose engine died (default 2)",
        "runs-root": "where new run directories go (default runs/)",
        "no-progress": "no progress bar (the report is still printed)",
        "keep-cluster": "leave a cluster that this search started running",
        "reuse": "take fits already made by earlier runs under --runs-root (same estimator, scoring, params, folds) instead of recomputing them",
        "hosts-file": HOSTS_HELP,
    },
)
def search_run(
    c,
    spec=DEFAULT_SPEC,
    engines=None,
    run_dir=None,
    n_iter=None,
    resume=None,
    max_retries=None,
    runs_root=driver.DEFAULT_RUNS_ROOT,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
    reuse=False,
):
    """Run a grid or randomized search on the cluster (started for the search if none runs)."""
    cfg = _hosts(hosts_file)
    n_iter = cli.int_flag("--n-iter", n_iter)
    engines, max_retries = cli.run_flags(engines, max_retries)
    if resume:
        s, meta = driver.load_resume(
            resume, spec if spec != DEFAULT_SPEC else None, n_iter=n_iter
        )
    else:
        s = load_search_spec(spec, n_iter=n_iter)
    split = driver.prepare_splits(s, cfg)
    if resume:
        if split.digest != meta["split_digest"]:
            raise ConfigError(
                f"--resume {resume}: the data or CV changed since the run started (splits "
                f"{split.digest} != {meta['split_digest']}). Fix: restore the data, or start a new run"
            )
        rdir = Path(resume)
    else:
        rdir = driver.new_run(
            s, runs_root, run_dir, split, command=shlex.join(["invoke", *sys.argv[1:]])
        )
        meta = driver.read_meta(rdir)
    with cli.cluster_client(cfg, split.path, engines, keep_cluster) as client:
        search = driver.run(
            s,
            cfg,
            client,
            rdir,
            split,
            meta,
            progress=not no_progress,
            max_retries=max_retries,
            reuse=reuse,
        )
    cli.finish_run(rdir, search, "search", f"invoke search --resume {rdir}")


@cli.fleet_task(
    name="abort",
    help={"run-dir": "the running run (default: the newest running one under runs/)"},
)
def search_abort(c, run_dir=None):
    """Abort a running search: queued tasks are cancelled, finished ones kept, and the run stays resumable."""
    rdir = Path(run_dir) if run_dir else _latest_running(driver.DEFAULT_RUNS_ROOT)
    meta = driver.read_meta(rdir)
    pid = meta.get("driver_pid")
    if meta.get("status") != "running" or not pid or not cli.alive(pid):
        raise Exit(
            f"{rdir}: no search is running there (status {meta.get('status')!r})",
            code=1,
        )
    # The driver handles SIGINT like Ctrl-C: abort, journal, write results.
    os.kill(pid, signal.SIGINT)
    for _ in range(300):
        if driver.read_meta(rdir).get("status") != "running":
            break
        time.sleep(0.1)
    resume = {
        "learning_curve": "curves.learning",
        "validation_curve": "curves.validation",
    }
    print(
        f"{rdir}: {driver.read_meta(rdir).get('status')}. Resume with: "
        f"invoke {resume.get(meta.get('kind'), 'search')} --resume {rdir}"
    )


def _latest_running(root: str) -> Path:
    runs = sorted(
        Path(root).glob("*/" + jn.META), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for m in runs:
        if json.loads(m.read_text()).get("status") == "running":
            return m.parent
    raise ConfigError(f"{root}: no running search found. Fix: pass --run-dir RUN_DIR")


# ------------------------------------------------------------------- report


@cli.fleet_task(
    help={
        "run-dir": "a run directory (runs/<run-id>)",
        "top": "rows in the table (default 5)",
    }
)
def report(c, run_dir, top=rs.TOP_K):
    """Rebuild results.json and report.txt of a run from its journal, and print the report."""
    rdir = Path(run_dir)
    meta = driver.read_meta(rdir)
    if meta.get("kind") in ("learning_curve", "validation_curve"):
        from runtime.dispatch.curves import rebuild_results

        rebuild_results(rdir)
        print((rdir / jn.REPORT).read_text(), end="")
        return
    records = jn.read_journal(rdir / jn.JOURNAL)
    res = rs.build_cv_results(
        meta["candidates"],
        meta["n_folds"],
        records,
        meta.get("return_train_score", True),
    )
    n_tasks = len(meta["candidates"]) * meta["n_folds"]
    n_done = sum(res["n_finished_splits"])
    status = meta.get("status", "running")
    if status == "running" and not cli.alive(meta.get("driver_pid") or 0):
        status = "interrupted"
    idx, params, score = rs.best(res, complete_only=True)
    jn.write_json(
        rdir / jn.RESULTS,
        {
            **res,
            "best_index": idx,
            "best_params": params,
            "best_score": score,
            "status": status,
            "n_tasks": n_tasks,
            "n_done": n_done,
        },
    )
    text = rs.format_report(res, n_tasks, n_done, top_k=int(top), status=status)
    (rdir / jn.REPORT).write_text(text + "\n")
    print(text)


# -------------------------------------------------------------------- probe


@cli.fleet_task(
    name="memory", help={"hosts-file": HOSTS_HELP, "json": "print raw JSON"}
)
def probe_memory(c, hosts_file=None, json_=False):
    """Per-host available memory and per-engine RSS/USS/PSS of the running cluster."""
    cfg = _hosts(hosts_file)
    client = cl.connect(cfg)
    try:
        probe = probe_cluster(client)
    finally:
        client.close()
    print(json.dumps(probe, indent=1, default=str) if json_ else format_probe(probe))


# -------------------------------------------------------------------- hosts


def _report_hosts(res, what: str) -> None:
    """Print every host's outcome, then fail naming every host that failed."""
    fab = cli.remote()
    fab.print_results(res)
    if res.failed:
        raise Exit(f"{what} failed on {', '.join(sorted(res.failed))}", code=1)


@cli.fleet_task(
    name="install",
    help={
        "only": "comma-separated host names (default: every remote host)",
        "wheelhouse": "a local folder of wheels to install from (default: built with pip wheel)",
        "hosts-file": HOSTS_HELP,
    },
)
def hosts_install(c, only=None, wheelhouse=None, hosts_file=None):
    """Create a venv in each host's workdir and install the engine requirements offline, from a wheelhouse built here."""
    cfg = _hosts(hosts_file)
    hosts = [h for h in cfg.only(only) if not h.local]
    if not hosts:
        raise ConfigError(
            f"{cfg.path}: no remote host to install. Fix: add hosts with an address (see README, many hosts)"
        )
    fab = cli.remote()
    print("building the wheelhouse (pip wheel -r requirements.txt) ...")
    wh = Path(wheelhouse) if wheelhouse else fab.build_wheelhouse()
    _report_hosts(fab.install(cfg, hosts, wh), "install")


@cli.fleet_task(
    name="run",
    help={
        "command": "the shell command",
        "only": "comma-separated host names (default: all remote hosts)",
        "hosts-file": HOSTS_HELP,
    },
)
def hosts_run(c, command, only=None, hosts_file=None):
    """Run a shell command on every host; output is prefixed by the host's name."""
    cfg = _hosts(hosts_file)
    hosts = [h for h in cfg.only(only) if not h.local]
    _report_hosts(cli.remote().run_command(cfg, command, hosts), "the command")


# --------------------------------------------------------------------- data


@cli.fleet_task(
    name="push",
    help={
        "spec": f"search spec whose data to push (default {DEFAULT_SPEC})",
        "hosts-file": HOSTS_HELP,
    },
)
def data_push(c, spec=DEFAULT_SPEC, hosts_file=None):
    """Persist the spec's folds and rsync them to every remote host's own disk (skipped where the digest is there)."""
    cfg = _hosts(hosts_file)
    split = driver.prepare_splits(load_search_spec(spec), cfg)
    if not cfg.remote_hosts:
        print("no remote hosts: the splits are on this machine only")
        return
    _report_hosts(cli.remote().push_splits(cfg, split.path, cfg.remote_hosts), "push")


# -------------------------------------------------------------- testcluster


@cli.fleet_task(
    name="up",
    help={
        "hosts": "number of namespace hosts (default 3)",
        "base-dir": "where keys, configs and the hosts' disks go (default ~/.cache/fleetcv/testcluster)",
        "write": "hosts file to write for the new cluster (default hosts.testcluster.yml)",
    },
)
def testcluster_up(c, hosts=3, base_dir=None, write="hosts.testcluster.yml"):
    """Create a multi-host test cluster on this machine: network namespaces with their own sshd, IP and disk (root)."""
    import sys as _sys

    from runtime.devtools import testcluster

    ok, why = testcluster.available()
    if not ok:
        raise Exit(f"cannot create the test cluster here: {why}", code=1)
    state = testcluster.up(int(hosts), base_dir)
    python = (
        "/usr/bin/python3" if Path("/usr/bin/python3").exists() else _sys.executable
    )
    Path(write).write_text(testcluster.hosts_yml(state, python=python))
    for h in state["hosts"]:
        print(f"{h['name']}: {h['address']} (disk {h['disk']})")
    print(
        f"wrote {write}. Next: invoke hosts.install --hosts-file {write} && invoke search --hosts-file {write}"
    )


@cli.fleet_task(name="down", help={"base-dir": "the base dir given to testcluster.up"})
def testcluster_down(c, base_dir=None):
    """Tear the test cluster down: its sshd and every process in its namespaces, by pid."""
    from runtime.devtools import testcluster

    testcluster.down(base_dir)
    print("test cluster removed")


# -------------------------------------------------------------------- bench


@cli.fleet_task(
    help={
        "engines": "N: fleetcv engines and loky workers (default: one per core)",
        "quick": "smaller grid and data, one timed run (under 2 minutes on 2 cores)",
        "out-dir": "where results.json and bench.png go (default bench/; BENCHMARKS.md is regenerated only then)",
    }
)
def bench(c, engines=None, quick=False, out_dir="bench"):
    """Benchmark fleetcv against GridSearchCV(n_jobs=N): wall time, memory, dispatch rate, scale."""
    from runtime.devtools.bench import run_bench

    r = run_bench(
        engines=cli.int_flag("--engines", engines),
        quick=quick,
        out_dir=out_dir,
        log=lambda m: print(m, flush=True),
    )
    ref, mem, dis = r["reference"], r["memory"], r["dispatch"]
    print(
        f"reference: fleetcv {ref['fleetcv_wall_seconds']:.2f} s vs sklearn {ref['sklearn_wall_seconds']:.2f} s "
        f"(ratio {ref['wall_ratio_fleetcv_over_sklearn']:.3f}); efficiency fleetcv {ref['fleetcv_efficiency']:.3f}, "
        f"sklearn {ref['sklearn_efficiency']:.3f}"
    )
    print(
        f"memory: peak worker PSS fleetcv {mem['fleetcv']['peak_sum_pss'] / 1e6:.0f} MB vs loky "
        f"{mem['sklearn_loky']['peak_sum_pss'] / 1e6:.0f} MB (data {mem['data_bytes'] / 1e6:.0f} MB)"
    )
    print(
        f"dispatch: {dis['tasks_per_second']:.0f} tasks/s ({dis['ms_per_task']:.2f} ms per task)"
    )
    print(f"wrote {out_dir}/results.json, {out_dir}/bench.png")


ns = Collection()
ns.add_collection(
    Collection(
        "cluster",
        cluster_start,
        cluster_stop,
        cluster_status,
        cluster_grow,
        cluster_install,
    )
)
ns.add_collection(Collection("search", search_run, search_abort))
ns.add_task(report)
ns.add_task(bench)
ns.add_collection(Collection("probe", probe_memory))
ns.add_collection(Collection("hosts", hosts_install, hosts_run))
ns.add_collection(Collection("data", data_push))
ns.add_collection(Collection("testcluster", testcluster_up, testcluster_down))
ns.add_collection(assess_tasks.curves)
ns.add_task(assess_tasks.plot)
ns.add_collection(ec2)
