"""fleetcv's command line: `invoke --list` shows every task, `invoke --help TASK` its flags.

Runs on the laptop. Every task parses its flags, calls one function of
runtime/ (the run lifecycle, the cluster, reports) or fabfile.py (anything on
a remote host), and prints. Errors a user can fix end as one `error: ...`
line and exit status 2, failures of a host or an engine exit 1 (see
runtime/errors.py), never a traceback. Flags shared by many tasks fall back
to Invoke's configuration (`fleetcv.hosts_file`, `fleetcv.runs_root`, e.g. in
an invoke.yaml), then to $FLEETCV_HOSTS and ./hosts.yml.
"""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path

from invoke import Collection, Exit, task

from ec2_tasks import ec2
from runtime.dispatch import cluster as cl
from runtime.dispatch import fleet
from runtime.dispatch import lifecycle as lc
from runtime.dispatch.probes import format_probe, probe_cluster
from runtime.errors import ConfigError, FleetcvError
from runtime.kinds.curves import DEFAULT_TRAIN_SIZES, learning_job, validation_job
from runtime.kinds.search import NAME as SEARCH
from runtime.rundir.results import TOP_K
from runtime.spec import HostsConfig, load_hosts, load_search_spec

DEFAULT_SPEC = "searches/digits_svc.yml"
CURVES = ("learning_curve", "validation_curve")
TRAIN_SIZES = ",".join(map(str, DEFAULT_TRAIN_SIZES))
#: Help of the flags that many tasks share, written once.
HELP = {
    "hosts-file": "hosts file (default: $FLEETCV_HOSTS, else ./hosts.yml, else this machine alone)",
    "spec": f"search spec (YAML), default {DEFAULT_SPEC}",
    "engines": "engines on this machine when the task starts the cluster (default: one per core)",
    "max-retries": "resubmissions of a task whose engine died (default 2)",
    "runs-root": "where new run directories go (default runs/)",
    "no-progress": "no progress bar (the report is still printed)",
    "keep-cluster": "leave a cluster that this task started running",
    "only": "comma-separated host names (default: every remote host)",
}
CURVE_HELP = {
    **{k: HELP[k] for k in ("engines", "max-retries", "runs-root", "no-progress")},
    **{k: HELP[k] for k in ("keep-cluster", "hosts-file")},
    "spec": f"search spec (YAML) giving estimator, data, folds and scoring; default {DEFAULT_SPEC}",
    "params": "fixed estimator parameters: a JSON object, or `best` for the best_params of a finished search (default: the spec's estimator as written)",
    "from-run": "with --params best: the search run to take them from (default: the newest finished run of the same spec under --runs-root)",
    "run-dir": "run directory (default: runs/<spec name>-<curve>-<date>-<time>)",
    "resume": "RUN_DIR of an interrupted curve: evaluate only what its journal lacks",
}


class _Remote:
    """fabfile.py, imported on first use: Fabric and paramiko load only for remote hosts."""

    def __getattr__(self, name):
        import fabfile

        return getattr(fabfile, name)


#: The remote layer handed to runtime/ (which never imports Fabric itself).
REMOTE = _Remote()


def fleet_task(*args, **kwargs):
    """`@task` without short flags, mapping fleetcv's errors to one line and their exit status."""

    def deco(fn):
        @functools.wraps(fn)
        def body(*a, **kw):
            try:
                return fn(*a, **kw)
            except FleetcvError as exc:
                raise Exit(f"{exc.prefix}{exc}", code=exc.exit_code) from None
            except Exception as exc:
                # ipyparallel loads only for the tasks that reach the cluster.
                from ipyparallel.error import RemoteError

                if not isinstance(exc, RemoteError | TimeoutError):
                    raise
                # The message names the engine and the cause; a traceback
                # would add nothing a user can act on.
                raise Exit(f"error: {type(exc).__name__}: {exc}", code=1) from None

        # Short flags would clash (-h is --help) and shift as flags are added.
        kwargs.setdefault("auto_shortflags", False)
        return task(*args, **kwargs)(body)

    return deco


def _setting(c, key: str, value):
    """A shared flag's value, else Invoke's `fleetcv.<key>` configuration."""
    return value if value is not None else c.config.get("fleetcv", {}).get(key)


def _hosts(c, hosts_file=None) -> HostsConfig:
    return load_hosts(_setting(c, "hosts_file", hosts_file))


def _runs_root(c, runs_root=None) -> str:
    return _setting(c, "runs_root", runs_root) or lc.DEFAULT_RUNS_ROOT


def int_flag(flag: str, value, minimum: int = 1) -> int | None:
    """Parse an integer flag (None stays None), or a ConfigError naming the flag."""
    if value is None:
        return None
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = None
    if v is None or v < minimum:
        raise ConfigError(
            f"{flag}: expected an integer >= {minimum}, got {value!r}. Fix: pass e.g. {flag} {max(minimum, 2)}"
        )
    return v


def _options(engines, max_retries, no_progress, keep_cluster, reuse=False):
    """The RunOptions of a run task's flags, checked."""
    return lc.RunOptions(
        engines=int_flag("--engines", engines),
        max_retries=int_flag(
            "--max-retries", 2 if max_retries is None else max_retries, 0
        ),
        progress=not no_progress,
        keep_cluster=keep_cluster,
        reuse=reuse,
    )


def _command() -> str:
    # Quoted, so a JSON --params survives a copy-paste from report.html.
    return shlex.join(["invoke", *sys.argv[1:]])


def _execute(cfg: HostsConfig, plan: lc.Plan, options: lc.RunOptions) -> None:
    lc.finish(plan, lc.execute(plan, cfg, REMOTE, options))


def _remote_hosts(cfg: HostsConfig, only) -> list:
    hosts = [h for h in cfg.only(only) if not h.local]
    if not hosts:
        raise ConfigError(
            f"{cfg.path}: no remote host to install. Fix: add hosts with an address (see README, many hosts)"
        )
    return hosts


# ------------------------------------------------------------------ cluster


@fleet_task(
    name="start",
    help={
        "engines": "engines on this machine (default: the local host's `engines`, auto = one per core)",
        "hosts-file": HELP["hosts-file"],
    },
)
def cluster_start(c, engines=None, hosts_file=None):
    """Start the controller and the engines of every host in the hosts file."""
    fleet.start_cluster(_hosts(c, hosts_file), int_flag("--engines", engines), REMOTE)


@fleet_task(name="stop", help={"hosts-file": HELP["hosts-file"]})
def cluster_stop(c, hosts_file=None):
    """Stop every engine (by the pids recorded at start) and the controller."""
    stopped = fleet.stop_cluster(_hosts(c, hosts_file), REMOTE)
    print("cluster stopped" if stopped else "no cluster was running")


@fleet_task(name="status", help={"hosts-file": HELP["hosts-file"]})
def cluster_status(c, hosts_file=None):
    """Show the controller and, per host, engines registered vs. running."""
    print("\n".join(fleet.status_lines(_hosts(c, hosts_file), REMOTE)))


@fleet_task(
    name="grow",
    help={
        "engines": "how many engines to add on each chosen host (default 1)",
        "runs-root": "where running searches are looked up, to push their folds to new hosts (default runs/)",
        "only": "comma-separated host names (default: every host of the hosts file)",
        "hosts-file": HELP["hosts-file"],
    },
)
def cluster_grow(c, engines=None, only=None, hosts_file=None, runs_root=None):
    """Add engines (or new hosts of the hosts file) to a running cluster; a running search uses them at once."""
    cfg = _hosts(c, hosts_file)
    n = int_flag("--engines", engines if engines is not None else 1)
    splits = lc.running_split_dirs(cfg, _runs_root(c, runs_root))
    fleet.grow(cfg, cfg.only(only), n, splits, REMOTE)


@fleet_task(
    name="install",
    help={
        "packages": "pip requirement(s) to install, space-separated in one argument "
        "(e.g. 'lightgbm==4.6.0 xgboost')",
        "hosts-file": HELP["hosts-file"],
    },
)
def cluster_install(c, packages=None, hosts_file=None):
    """pip-install packages on a running cluster, once per host (its engines share the venv)."""
    # One argument, split here: Invoke takes no variable number of positionals.
    try:
        names = shlex.split(packages or "")
    except ValueError as exc:
        raise ConfigError(
            f"cluster.install: cannot read {packages!r} ({exc}). Fix: balance the quotes"
        ) from exc
    if not names:
        raise ConfigError(
            "cluster.install: no package given. Fix: invoke cluster.install --packages PACKAGE, "
            "or several in quotes: --packages 'PACKAGE1 PACKAGE2'"
        )
    fleet.pip_install(_hosts(c, hosts_file), names)


# ------------------------------------------------------------------- search


@fleet_task(
    name="run",
    default=True,
    help={
        **{k: v for k, v in HELP.items() if k != "only"},
        "run-dir": "run directory (default: runs/<spec name>-<date>-<time>)",
        "n-iter": "number of candidates to draw (randomized search; on a grid: a random subset)",
        "resume": "RUN_DIR of an interrupted run: evaluate only what its journal lacks",
        "reuse": "take fits already made by earlier runs under --runs-root (same estimator, scoring, params, folds) instead of recomputing them",
    },
)
def search_run(
    c,
    spec=None,
    engines=None,
    run_dir=None,
    n_iter=None,
    resume=None,
    max_retries=None,
    runs_root=None,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
    reuse=False,
):
    """Run a grid or randomized search on the cluster (started for the search if none runs)."""
    cfg, n_iter = _hosts(c, hosts_file), int_flag("--n-iter", n_iter)
    options = _options(engines, max_retries, no_progress, keep_cluster, reuse)
    if resume:
        plan = lc.plan_resume(resume, cfg, (SEARCH,), spec_file=spec, n_iter=n_iter)
    else:
        s = load_search_spec(spec or DEFAULT_SPEC, n_iter=n_iter)
        root = _runs_root(c, runs_root)
        plan = lc.plan_new(
            s,
            lc.search_job_of(s),
            cfg,
            runs_root=root,
            run_dir=run_dir,
            command=_command(),
        )
    _execute(cfg, plan, options)


@fleet_task(
    name="abort",
    help={"run-dir": "the running run (default: the newest running one under runs/)"},
)
def search_abort(c, run_dir=None):
    """Abort a running search or curve: queued tasks are cancelled, finished ones kept, and the run stays resumable."""
    print(lc.abort(run_dir, _runs_root(c)))


# ------------------------------------------------------------------- curves


@fleet_task(
    name="learning",
    help={
        **CURVE_HELP,
        "train-sizes": "comma-separated training-set sizes: fractions of the first "
        f"training fold (default {TRAIN_SIZES}) or counts (50,100,200)",
    },
)
def curves_learning(
    c,
    spec=None,
    train_sizes=TRAIN_SIZES,
    params=None,
    from_run=None,
    run_dir=None,
    resume=None,
    engines=None,
    max_retries=None,
    runs_root=None,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
):
    """Learning curve: train and validation scores for growing training sets x folds, on the cluster."""
    cfg, root = _hosts(c, hosts_file), _runs_root(c, runs_root)
    options = _options(engines, max_retries, no_progress, keep_cluster)
    if resume:
        plan = lc.plan_resume(resume, cfg, CURVES)
    else:
        s = load_search_spec(spec or DEFAULT_SPEC)
        job = learning_job(s, train_sizes, params, from_run, root)
        plan = lc.plan_new(
            s, job, cfg, runs_root=root, run_dir=run_dir, command=_command()
        )
    _execute(cfg, plan, options)


@fleet_task(
    name="validation",
    help={
        **CURVE_HELP,
        "param": "the parameter to sweep (e.g. C, or svc__C in a pipeline)",
        "range": "its values: a JSON list or logspace/linspace/geomspace/arange(...) "
        "(default: the values the spec's grid gives it)",
    },
)
def curves_validation(
    c,
    param=None,
    spec=None,
    range_=None,
    params=None,
    from_run=None,
    run_dir=None,
    resume=None,
    engines=None,
    max_retries=None,
    runs_root=None,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
):
    """Validation curve: train and validation scores for each value of one parameter x folds, the others fixed."""
    cfg, root = _hosts(c, hosts_file), _runs_root(c, runs_root)
    options = _options(engines, max_retries, no_progress, keep_cluster)
    if resume:
        plan = lc.plan_resume(resume, cfg, CURVES)
    else:
        s = load_search_spec(spec or DEFAULT_SPEC)
        job = validation_job(s, param, range_, params, from_run, root)
        plan = lc.plan_new(
            s, job, cfg, runs_root=root, run_dir=run_dir, command=_command()
        )
    _execute(cfg, plan, options)


# ------------------------------------------------------------------ reports


@fleet_task(
    help={
        "run-dir": "a run directory (runs/<run-id>)",
        "top": f"rows in the table (default {TOP_K})",
    }
)
def report(c, run_dir, top=TOP_K):
    """Rebuild results.json and report.txt of a run from its journal, and print the report."""
    print(lc.rebuild(run_dir, top_k=int_flag("--top", top, minimum=0)))


@fleet_task(help={"run-dir": "a run directory (runs/<run-id>): a search or a curve"})
def plot(c, run_dir):
    """Regenerate the plots and report.html of a run from its journal (no cluster needed)."""
    from runtime.report.html import finish_run  # matplotlib: only this task needs it

    out = finish_run(run_dir)
    print("\n".join(f"wrote {p}" for p in [*out["plots"], out["report"]]))


@fleet_task(
    name="memory", help={"hosts-file": HELP["hosts-file"], "json": "print raw JSON"}
)
def probe_memory(c, hosts_file=None, json_=False):
    """Per-host available memory and per-engine RSS/USS/PSS of the running cluster."""
    import json

    client = cl.connect(_hosts(c, hosts_file))
    try:
        probe = probe_cluster(client)
    finally:
        client.close()
    print(json.dumps(probe, indent=1, default=str) if json_ else format_probe(probe))


# -------------------------------------------------------------------- hosts


@fleet_task(
    name="install",
    help={
        "only": HELP["only"],
        "wheelhouse": "a local folder of wheels to install from (default: built with pip wheel)",
        "hosts-file": HELP["hosts-file"],
    },
)
def hosts_install(c, only=None, wheelhouse=None, hosts_file=None):
    """Create a venv in each host's workdir and install fleetcv and the engine requirements offline, from a wheelhouse built here."""
    cfg = _hosts(c, hosts_file)
    hosts = _remote_hosts(cfg, only)
    print("building the wheelhouse (pip wheel) ...")
    wh = Path(wheelhouse) if wheelhouse else REMOTE.build_wheelhouse()
    fleet.check_hosts(REMOTE.install(cfg, hosts, wh), "install", REMOTE)


@fleet_task(
    name="run",
    help={
        "command": "the shell command",
        "only": HELP["only"],
        "hosts-file": HELP["hosts-file"],
    },
)
def hosts_run(c, command, only=None, hosts_file=None):
    """Run a shell command on every host; output is prefixed by the host's name."""
    cfg = _hosts(c, hosts_file)
    hosts = [h for h in cfg.only(only) if not h.local]
    fleet.check_hosts(REMOTE.run_command(cfg, command, hosts), "the command", REMOTE)


@fleet_task(
    name="push",
    help={
        "spec": f"search spec whose data to push (default {DEFAULT_SPEC})",
        "hosts-file": HELP["hosts-file"],
    },
)
def data_push(c, spec=None, hosts_file=None):
    """Persist the spec's folds and rsync them to every remote host's own disk (skipped where the digest is there)."""
    cfg = _hosts(c, hosts_file)
    split = lc.prepare_splits(load_search_spec(spec or DEFAULT_SPEC), cfg)
    if not cfg.remote_hosts:
        print("no remote hosts: the splits are on this machine only")
        return
    fleet.check_hosts(
        REMOTE.push_splits(cfg, split.path, cfg.remote_hosts), "push", REMOTE
    )


# --------------------------------------------------------------- dev tools


@fleet_task(
    name="up",
    help={
        "hosts": "number of namespace hosts (default 3)",
        "base-dir": "where keys, configs and the hosts' disks go (default ~/.cache/fleetcv/testcluster)",
        "write": "hosts file to write for the new cluster (default hosts.testcluster.yml)",
    },
)
def testcluster_up(c, hosts=3, base_dir=None, write="hosts.testcluster.yml"):
    """Create a multi-host test cluster on this machine: network namespaces with their own sshd, IP and disk (root)."""
    from runtime.devtools import testcluster  # a developer tool: loaded only here

    ok, why = testcluster.available()
    if not ok:
        raise Exit(f"cannot create the test cluster here: {why}", code=1)
    state = testcluster.up(int(hosts), base_dir)
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    Path(write).write_text(testcluster.hosts_yml(state, python=python))
    print(
        "\n".join(
            f"{h['name']}: {h['address']} (disk {h['disk']})" for h in state["hosts"]
        )
    )
    print(
        f"wrote {write}. Next: invoke hosts.install --hosts-file {write} && invoke search --hosts-file {write}"
    )


@fleet_task(name="down", help={"base-dir": "the base dir given to testcluster.up"})
def testcluster_down(c, base_dir=None):
    """Tear the test cluster down: its sshd and every process in its namespaces, by pid."""
    from runtime.devtools import testcluster  # a developer tool: loaded only here

    testcluster.down(base_dir)
    print("test cluster removed")


@fleet_task(
    help={
        "engines": "N: fleetcv engines and loky workers (default: one per core)",
        "quick": "smaller grid and data, one timed run (under 2 minutes on 2 cores)",
        "out-dir": "where results.json and bench.png go (default bench/; BENCHMARKS.md is regenerated only then)",
    }
)
def bench(c, engines=None, quick=False, out_dir="bench"):
    """Benchmark fleetcv against GridSearchCV(n_jobs=N): wall time, memory, dispatch rate, scale."""
    from runtime.devtools import (
        bench as fleet_bench,
    )  # a developer tool: loaded only here

    r = fleet_bench.run_bench(
        engines=int_flag("--engines", engines),
        quick=quick,
        out_dir=out_dir,
        log=lambda m: print(m, flush=True),
        remote=REMOTE,
    )
    print("\n".join(fleet_bench.summary_lines(r, out_dir)))


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
ns.add_collection(Collection("curves", curves_learning, curves_validation))
ns.add_task(report)
ns.add_task(plot)
ns.add_task(bench)
ns.add_collection(Collection("probe", probe_memory))
ns.add_collection(Collection("hosts", hosts_install, hosts_run))
ns.add_collection(Collection("data", data_push))
ns.add_collection(Collection("testcluster", testcluster_up, testcluster_down))
ns.add_collection(ec2)
ns.configure({"fleetcv": {"hosts_file": None, "runs_root": None}})
