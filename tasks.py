"""fleetcv's command line: `invoke --list` shows every task, `invoke --help TASK` its flags.

Runs on the laptop. Every task parses its flags, calls one function of
fleetcv/ (the run lifecycle, the cluster, reports) or fabfile.py (anything on
a remote host), and prints. Errors a user can fix end as one `error: ...`
line and exit status 2, failures of a host or an engine exit 1 (see
fleetcv/errors.py), never a traceback. Flags shared by many tasks fall back
to Invoke's configuration (`fleetcv.hosts_file`, `fleetcv.runs_root`, e.g. in
an invoke.yaml), then to $FLEETCV_HOSTS and ./hosts.yml.

One concept, the command line, in the one file the design fixes at the root
(Invoke finds it as tasks.py): over 600 lines because it holds every task's
signature and help text (about two thirds of it); the bodies are a few lines
each, and nothing under fleetcv/ or runtime/ imports Invoke.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import gc
import math
import os
import shlex
import sys
from pathlib import Path

# Before anything heavy: a run task goes to the warm driver of a running
# cluster, when there is one, and this process ends with its status.
from fleetcv.dispatch import warm

warm.hand_off(sys.argv)

# Python's exit collects every object still alive, and scikit-learn's imports
# leave hundreds of thousands: 0.3-0.4 s at the end of every command (measured
# on this 2-core machine). Frozen as the exit begins (atexit handlers
# registered later, by the imports below, still run first), they are left to
# the OS with the rest of the process; modules still unload, and the run's
# files are written and closed by then.
atexit.register(gc.freeze)

from invoke import Collection, Exit, task

from fleetcv import api
from fleetcv import ec2 as cloud
from fleetcv.backends import Backends
from fleetcv.dispatch import fleet
from fleetcv.dispatch import lifecycle as lc
from fleetcv.dispatch.wheelhouse import build_wheelhouse
from fleetcv.errors import ConfigError, FleetcvError
from fleetcv.kinds import SEARCH_KINDS
from fleetcv.kinds.curve_flags import DEFAULT_TRAIN_SIZES, learning_job, validation_job
from fleetcv.kinds.curves import KINDS as CURVES
from fleetcv.rundir.results import TOP_K
from fleetcv.spec import HOSTS_ENV, HostsConfig, load_hosts, load_search_spec

DEFAULT_SPEC = "searches/digits_svc.yml"
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


#: The driver's backends: each host's (Fabric loads only for SSH hosts).
REMOTE = Backends()


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


def _hosts_file(c, hosts_file=None) -> str | None:
    """The --hosts-file flag, else Invoke's configuration (None: the default file)."""
    return _setting(c, "hosts_file", hosts_file)


def _hosts(c, hosts_file=None) -> HostsConfig:
    return load_hosts(_hosts_file(c, hosts_file))


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


def seconds_flag(flag: str, value) -> float | None:
    """Parse a duration flag in seconds (> 0; None stays None), or a ConfigError naming it."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(
            f"{flag}: expected a number of seconds > 0, got {value!r}. Fix: pass e.g. "
            f"{flag} 600"
        )
    return v


def _options(
    engines, max_retries, no_progress, keep_cluster, reuse=False, task_timeout=None
):
    """The RunOptions of a run task's flags, checked."""
    return lc.RunOptions(
        task_timeout=seconds_flag("--task-timeout", task_timeout),
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


def _run(c, hosts_file, kinds, job, options, where: dict, n_iter=None) -> None:
    """A run task: resume `where["resume"]`, or plan a new run of `job(spec, runs_root)`.

    `where` holds the flags spec, resume, run_dir and runs_root; a `--spec`
    given with `--resume` must be the spec the run started from.
    """
    cfg, root = _hosts(c, hosts_file), _runs_root(c, where["runs_root"])
    spec = where["spec"]
    # No cluster yet: it starts on the other cores while this one plans.
    early = fleet.start_early(cfg, options.engines)
    try:
        if where["resume"]:
            plan = lc.plan_resume(
                where["resume"], cfg, kinds, spec_file=spec, n_iter=n_iter
            )
        else:
            s = load_search_spec(spec or DEFAULT_SPEC, n_iter=n_iter)
            plan = lc.plan_new(
                s,
                job(s, root),
                cfg,
                runs_root=root,
                run_dir=where["run_dir"],
                command=_command(),
            )
    except BaseException:
        if early is not None:
            # A run that cannot start leaves no cluster behind it (one whose
            # start failed has stopped itself, or is another run's).
            with contextlib.suppress(BaseException):
                early.join()
            if early.error is None:
                fleet.stop_cluster(cfg, REMOTE)
        raise
    lc.finish(plan, lc.execute(plan, cfg, REMOTE, options, early=early))


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
    api.start_cluster(
        _hosts_file(c, hosts_file),
        engines=int_flag("--engines", engines),
        remote=REMOTE,
    )
    # The run tasks hand their commands to it while this cluster runs.
    warm.start()


@fleet_task(name="stop", help={"hosts-file": HELP["hosts-file"]})
def cluster_stop(c, hosts_file=None):
    """Stop every engine (by the pids recorded at start), the controller and the warm driver."""
    stopped = api.stop_cluster(_hosts_file(c, hosts_file), remote=REMOTE)
    # Here, not with every stop: a run that started (and stops) a cluster of
    # its own may be running in the warm driver's child.
    warm.stop()
    print("cluster stopped" if stopped else "no cluster was running")


@fleet_task(name="status", help={"hosts-file": HELP["hosts-file"]})
def cluster_status(c, hosts_file=None):
    """Show the controller and, per host, engines registered vs. running."""
    print(api.cluster_status(_hosts_file(c, hosts_file), remote=REMOTE))


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
    root = _runs_root(c, runs_root)
    splits = lc.running_split_dirs(cfg, root)
    code = lc.running_code_dirs(cfg, root)
    fleet.grow(cfg, cfg.only(only), n, splits, REMOTE, extra=code)


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
        "task-timeout": "seconds a fit may run; one that runs longer has its engine replaced and counts as a failed fit (default: the spec's task_timeout, else no limit)",
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
    task_timeout=None,
):
    """Run the spec's search (its `search:` kind: grid, random, halving...) on the cluster (started for it if none runs)."""
    options = _options(
        engines, max_retries, no_progress, keep_cluster, reuse, task_timeout
    )
    where = {"spec": spec, "resume": resume, "run_dir": run_dir, "runs_root": runs_root}
    _run(
        c,
        hosts_file,
        SEARCH_KINDS,
        lambda s, root: lc.search_job_of(s),
        options,
        where,
        int_flag("--n-iter", n_iter),
    )


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
    options = _options(engines, max_retries, no_progress, keep_cluster)

    where = {"spec": spec, "resume": resume, "run_dir": run_dir, "runs_root": runs_root}

    def job(s, root):
        return learning_job(s, train_sizes, params, from_run, root)

    _run(c, hosts_file, CURVES, job, options, where)


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
    options = _options(engines, max_retries, no_progress, keep_cluster)

    where = {"spec": spec, "resume": resume, "run_dir": run_dir, "runs_root": runs_root}

    def job(s, root):
        return validation_job(s, param, range_, params, from_run, root)

    _run(c, hosts_file, CURVES, job, options, where)


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
    from fleetcv.report.html import finish_run  # matplotlib: only this task needs it

    out = finish_run(run_dir)
    print("\n".join(f"wrote {p}" for p in [*out["plots"], out["report"]]))


@fleet_task(
    help={
        "run-dir": "a finished search run (runs/<run-id>) whose best estimator was refit",
        "data": "new rows: a .csv/.parquet table (its target, group and weight columns "
        "are left out), a .npy table or a .npz file",
        "out": "the file to write, by its extension: .csv, .parquet, .npy or .jsonl "
        "(default RUN_DIR/predictions.csv)",
        "proba": "also write predict_proba's columns, proba_<class>",
    }
)
def predict(c, run_dir, data, out=None, proba=False):
    """Predict new rows with a search's best estimator (best_estimator.joblib), into a file."""
    from fleetcv.predict import predict as write_predictions  # pandas: only here

    path, n = write_predictions(run_dir, data, out, proba)
    print(f"wrote {n} predictions to {path}")


@fleet_task(
    name="memory", help={"hosts-file": HELP["hosts-file"], "json": "print raw JSON"}
)
def probe_memory(c, hosts_file=None, json_=False):
    """Per-host available memory and per-engine RSS/USS/PSS of the running cluster."""
    import json

    probe = api.probe_memory(_hosts_file(c, hosts_file), remote=REMOTE)
    print(
        json.dumps(probe, indent=1, default=str) if json_ else api.format_probe(probe)
    )


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
    print(
        "building the wheelhouse (pip wheel of fleetcv and its engine requirements) ..."
    )
    wh = Path(wheelhouse) if wheelhouse else build_wheelhouse()
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
    from fleetcv.devtools import testcluster  # a developer tool: loaded only here

    print("\n".join(testcluster.up_and_write(int(hosts), base_dir, write)))


@fleet_task(name="down", help={"base-dir": "the base dir given to testcluster.up"})
def testcluster_down(c, base_dir=None):
    """Tear the test cluster down: its sshd and every process in its namespaces, by pid."""
    from fleetcv.devtools import testcluster  # a developer tool: loaded only here

    testcluster.down(base_dir)
    print("test cluster removed")


@fleet_task(
    help={
        "engines": "N: fleetcv engines and loky workers (default: one per core)",
        "quick": "smaller grid and data, one timed run of each figure (a few minutes on 2 cores)",
        "out-dir": "where results.json and bench.png go (default bench/; BENCHMARKS.md is regenerated only then)",
    }
)
def bench(c, engines=None, quick=False, out_dir="bench"):
    """Benchmark fleetcv against GridSearchCV on loky, ipyparallel, dask and Ray: wall time, fixed cost, memory, dispatch rate, scale."""
    from fleetcv.devtools import (
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


# ---------------------------------------------------------------------- ec2

EC2_HELP = {
    "cluster": f"cluster name, the value of the {cloud.TAG_CLUSTER} tag (default {cloud.DEFAULT_CLUSTER})",
    "region": "AWS region (default: the AWS configuration's, e.g. AWS_DEFAULT_REGION)",
    "endpoint-url": f"an EC2-compatible endpoint (default ${cloud.ENDPOINT_ENV}, else AWS)",
    "hosts-file": f"hosts file to update (default ${HOSTS_ENV}, else hosts.yml)",
}
LAUNCH_HELP = {
    "count": "number of instances to launch",
    "max-instances": f"refuse to go past this many live instances in the cluster (default {cloud.DEFAULT_MAX_INSTANCES})",
    "no-ssh-wait": "do not wait for SSH to answer on the new hosts",
}
#: The flags of ec2.up and ec2.grow that are whole numbers.
_INT_FLAGS = ("count", "max_instances")


def _ec2_hosts_file(c, hosts_file: str | None) -> str:
    return (
        _setting(c, "hosts_file", hosts_file)
        or os.environ.get(HOSTS_ENV)
        or "hosts.yml"
    )


def _whole(flag: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{flag}: expected a whole number, got {value!r}. Fix: pass e.g. {flag} 2"
        ) from None


def _settings(flags: dict) -> cloud.LaunchSettings:
    """The LaunchSettings of a task's flags, given as its ``locals()``.

    Invoke makes a task's flags from its parameters, which are named as
    LaunchSettings' fields; the others (``c``, ``no_ssh_wait``) are left out.
    """
    names = {f.name for f in dataclasses.fields(cloud.LaunchSettings)}
    values = {k: v for k, v in flags.items() if k in names}
    for key in _INT_FLAGS:
        values[key] = _whole("--" + key.replace("_", "-"), values[key])
    return cloud.LaunchSettings(**values)


def _fetch(fetch_path: str, dest: str):
    """What `ec2.down` calls with the hosts' entries before it terminates them."""
    return functools.partial(REMOTE.fetch_dirs, remote=fetch_path, dest=dest)


def _tunneled(hosts_file: str) -> HostsConfig | None:
    """The hosts file before `ec2.down` when its hosts are tunneled, to close the tunnels after."""
    try:
        cfg = load_hosts(hosts_file)
    except ConfigError:
        return None  # no usable hosts file: no tunnels of its hosts to close
    return cfg if cfg.controller.tunnel else None


def _require_instance_type(instance_type: str | None, hint: str = "") -> None:
    if instance_type is None:
        raise ConfigError(
            f"--instance-type: required. Fix: pass e.g. --instance-type c5.xlarge{hint}"
        )


def _wait(no_ssh_wait: bool):
    # Looked up at call time, so tests can replace fleetcv.ec2's default.
    return None if no_ssh_wait else cloud.default_wait_reachable


@fleet_task(
    name="up",
    help={
        **EC2_HELP,
        **LAUNCH_HELP,
        "instance-type": "EC2 instance type, e.g. c5.xlarge (engines = its vCPUs)",
        "spot": "launch on the spot market (cheaper; AWS may reclaim the instances at any time)",
        "max-price": "highest spot price in USD/hour (default: the on-demand price)",
        "ami": "image id (default: the newest Canonical Ubuntu 24.04 image)",
        "key-name": "EC2 key pair to install for the login user",
        "ssh-key": "local private key of that key pair, written to the host entries",
        "subnet": "subnet id (default: the region's default VPC)",
        "ssh-cidr": "who may SSH in, e.g. 203.0.113.7/32, or `auto` (this machine's public IP); required for a new cluster",
        "user": f"login user of the AMI (default {cloud.DEFAULT_USER})",
        "workdir": f"workdir on the instances' local disk (default {cloud.DEFAULT_WORKDIR})",
    },
)
def ec2_up(
    c,
    count=None,
    instance_type=None,
    spot=False,
    max_price=None,
    ami=None,
    key_name=None,
    ssh_key=None,
    region=None,
    subnet=None,
    cluster=cloud.DEFAULT_CLUSTER,
    ssh_cidr=None,
    user=cloud.DEFAULT_USER,
    workdir=cloud.DEFAULT_WORKDIR,
    endpoint_url=None,
    hosts_file=None,
    max_instances=cloud.DEFAULT_MAX_INSTANCES,
    no_ssh_wait=False,
):
    """Launch an EC2 cluster (or add to it), wait for SSH, and write its hosts to the hosts file."""
    hosts_file = _ec2_hosts_file(c, hosts_file)
    _require_instance_type(
        instance_type, " (invoke ec2.prices --instance-type T shows spot prices)"
    )
    res = cloud.launch_cluster(_settings(locals()), wait_reachable=_wait(no_ssh_wait))
    print("\n".join(cloud.launch_lines(res, hosts_file)))


@fleet_task(
    name="grow",
    help={
        **EC2_HELP,
        **LAUNCH_HELP,
        "instance-type": "instance type of the new hosts (default: the cluster's)",
    },
)
def ec2_grow(
    c,
    count=None,
    cluster=cloud.DEFAULT_CLUSTER,
    instance_type=None,
    region=None,
    endpoint_url=None,
    hosts_file=None,
    max_instances=cloud.DEFAULT_MAX_INSTANCES,
    no_ssh_wait=False,
):
    """Add instances to a running EC2 cluster, launched like its `ec2.up`; then cluster.grow puts them to work."""
    hosts_file = _ec2_hosts_file(c, hosts_file)
    res = cloud.launch_cluster(
        _settings(locals()), grow=True, wait_reachable=_wait(no_ssh_wait)
    )
    print("\n".join(cloud.launch_lines(res, hosts_file)))
    print(
        f"then: invoke cluster.grow --hosts-file {hosts_file} --only "
        f"{','.join(h['name'] for h in res.hosts)} (a running search uses them at once)"
    )


@fleet_task(
    name="status",
    help={k: v for k, v in EC2_HELP.items() if k != "hosts-file"},
)
def ec2_status(c, cluster=cloud.DEFAULT_CLUSTER, region=None, endpoint_url=None):
    """The cluster's instances: state (a reclaimed spot instance shows), market, price, uptime, cost so far."""
    print(
        cloud.format_status(
            cloud.status(cluster=cluster, region=region, endpoint_url=endpoint_url)
        )
    )


@fleet_task(
    name="prices",
    help={
        "instance-type": "EC2 instance type, e.g. c5.xlarge",
        "days": "how many days of history (default 7)",
        "region": EC2_HELP["region"],
        "endpoint-url": EC2_HELP["endpoint-url"],
    },
)
def ec2_prices(c, instance_type=None, days=7, region=None, endpoint_url=None):
    """Spot price history of an instance type: current, max and average price (like starcluster spothistory)."""
    _require_instance_type(instance_type)
    try:
        days = float(days)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--days: expected a number, got {days!r}. Fix: pass e.g. --days 7"
        ) from None
    p = cloud.prices(instance_type, region=region, endpoint_url=endpoint_url, days=days)
    print(cloud.format_prices(p))


@fleet_task(
    name="down",
    help={
        **EC2_HELP,
        "no-fetch": "terminate without copying the hosts' run directories back first",
        "fetch-path": "directory to copy back from each host; {workdir} is the host's workdir (default {workdir}/runs)",
        "fetch-to": "where the copies go, one folder per host (default runs/ec2-<cluster>)",
    },
)
def ec2_down(
    c,
    cluster=cloud.DEFAULT_CLUSTER,
    region=None,
    endpoint_url=None,
    hosts_file=None,
    no_fetch=False,
    fetch_path="{workdir}/runs",
    fetch_to=None,
):
    """Fetch run directories back, then terminate exactly the cluster's instances and security group."""
    hosts_file = _ec2_hosts_file(c, hosts_file)
    dest = fetch_to or f"runs/ec2-{cluster}"
    fetch = None if no_fetch else _fetch(fetch_path, dest)
    tunneled = _tunneled(hosts_file)
    res = cloud.down(
        cluster=cluster,
        fetch=fetch,
        hosts_file=hosts_file,
        region=region,
        endpoint_url=endpoint_url,
    )
    print("\n".join(cloud.down_lines(res, hosts_file)))
    if tunneled is not None:
        print(REMOTE.close_tunnels_of(tunneled, res.removed_hosts))


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
ns.add_task(predict)
ns.add_task(bench)
ns.add_collection(Collection("probe", probe_memory))
ns.add_collection(Collection("hosts", hosts_install, hosts_run))
ns.add_collection(Collection("data", data_push))
ns.add_collection(Collection("testcluster", testcluster_up, testcluster_down))
ns.add_collection(Collection("ec2", ec2_up, ec2_grow, ec2_status, ec2_prices, ec2_down))
ns.configure({"fleetcv": {"hosts_file": None, "runs_root": None}})
