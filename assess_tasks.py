"""Model assessment on the command line: `invoke curves.learning`, `curves.validation`, `plot`.

Runs on the laptop. tasks.py adds these to fleetcv's collection
(`ns.add_collection(assess_tasks.curves)`, `ns.add_task(assess_tasks.plot)`);
they live apart so this module never imports tasks.py (which imports it).
Each task parses its flags, calls runtime/curves.py and runtime/report_html.py,
and prints; errors a user can fix end as one line and exit status 2. A curve
starts the cluster if none runs (and stops what it started), exactly as
`invoke search` does.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import Collection

from runtime.dispatch import curves as runtime_curves
from runtime.dispatch import fleet as cli
from runtime.dispatch import lifecycle as driver
from runtime.engine.folds import SplitSet
from runtime.spec import ConfigError, HostsConfig, load_hosts, load_search_spec

DEFAULT_SPEC = cli.DEFAULT_SPEC
DEFAULT_TRAIN_SIZES = ",".join(str(v) for v in runtime_curves.DEFAULT_TRAIN_SIZES)
HOSTS_HELP = cli.HOSTS_HELP
#: Flags shared by both curve tasks, documented once.
RUN_HELP = {
    "spec": f"search spec (YAML) giving estimator, data, folds and scoring; default {DEFAULT_SPEC}",
    "params": "fixed estimator parameters: a JSON object, or `best` for the best_params of a finished search (default: the spec's estimator as written)",
    "from-run": "with --params best: the search run to take them from (default: the newest finished run of the same spec under --runs-root)",
    "run-dir": "run directory (default: runs/<spec name>-<curve>-<date>-<time>)",
    "resume": "RUN_DIR of an interrupted curve: evaluate only what its journal lacks",
    "engines": "engines on this machine when the task starts the cluster (default: one per core)",
    "max-retries": "resubmissions of a task whose engine died (default 2)",
    "runs-root": "where new run directories go (default runs/)",
    "no-progress": "no progress bar (the report is still printed)",
    "keep-cluster": "leave a cluster that this task started running",
    "hosts-file": HOSTS_HELP,
}


def _command() -> str:
    # Quoted, so a JSON --params survives a copy-paste from report.html.
    return shlex.join(["invoke", *sys.argv[1:]])


def _run(
    cfg: HostsConfig,
    spec,
    split: SplitSet,
    rdir: Path,
    engines: int | None,
    max_retries: int,
    no_progress: bool,
    keep_cluster: bool,
) -> None:
    """Run the curve of `rdir`, write its plots and report.html, print the report."""
    meta = driver.read_meta(rdir)
    with cli.cluster_client(cfg, split.path, engines, keep_cluster) as client:
        curve = runtime_curves.run_curve(
            spec,
            client,
            rdir,
            split,
            meta,
            progress=not no_progress,
            max_retries=max_retries,
        )
    task_name = "learning" if meta["kind"] == runtime_curves.LEARNING else "validation"
    cli.finish_run(rdir, curve, "curve", f"invoke curves.{task_name} --resume {rdir}")


def _resume(cfg: HostsConfig, run_dir: str) -> tuple:
    spec, meta = runtime_curves.load_curve_resume(run_dir)
    split = driver.prepare_splits(spec, cfg)
    if split.digest != meta["split_digest"]:
        raise ConfigError(
            f"--resume {run_dir}: the data or CV changed since the run started "
            f"(splits {split.digest} != {meta['split_digest']}). Fix: restore the "
            "data, or start a new run"
        )
    return spec, split, Path(run_dir)


@cli.fleet_task(
    name="learning",
    help={
        **RUN_HELP,
        "train-sizes": "comma-separated training-set sizes: fractions of the first "
        f"training fold (default {DEFAULT_TRAIN_SIZES}) or counts (50,100,200)",
    },
)
def learning(
    c,
    spec=DEFAULT_SPEC,
    train_sizes=DEFAULT_TRAIN_SIZES,
    params=None,
    from_run=None,
    run_dir=None,
    resume=None,
    engines=None,
    max_retries=None,
    runs_root=driver.DEFAULT_RUNS_ROOT,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
):
    """Learning curve: train and validation scores for growing training sets x folds, on the cluster."""
    cfg = load_hosts(hosts_file)
    engines, max_retries = cli.run_flags(engines, max_retries)
    if resume:
        s, split, rdir = _resume(cfg, resume)
    else:
        s = load_search_spec(spec)
        fixed = runtime_curves.resolve_params(params, s, from_run, runs_root)
        sizes = runtime_curves.parse_train_sizes(train_sizes)
        split = driver.prepare_splits(s, cfg)
        sizes_abs = runtime_curves.translate_train_sizes(
            sizes, runtime_curves.max_train_size(split)
        )
        definition = runtime_curves.learning_definition(
            sizes_abs, fixed, s.scoring, sizes
        )
        rdir = runtime_curves.new_curve_run(
            s, definition, split, runs_root, run_dir, _command()
        )
    _run(cfg, s, split, rdir, engines, max_retries, no_progress, keep_cluster)


@cli.fleet_task(
    name="validation",
    help={
        **RUN_HELP,
        "param": "the parameter to sweep (e.g. C, or svc__C in a pipeline)",
        "range": "its values: a JSON list or logspace/linspace/geomspace/arange(...) "
        "(default: the values the spec's grid gives it)",
    },
)
def validation(
    c,
    param=None,
    spec=DEFAULT_SPEC,
    range_=None,
    params=None,
    from_run=None,
    run_dir=None,
    resume=None,
    engines=None,
    max_retries=None,
    runs_root=driver.DEFAULT_RUNS_ROOT,
    no_progress=False,
    keep_cluster=False,
    hosts_file=None,
):
    """Validation curve: train and validation scores for each value of one parameter x folds, the others fixed."""
    cfg = load_hosts(hosts_file)
    engines, max_retries = cli.run_flags(engines, max_retries)
    if resume:
        s, split, rdir = _resume(cfg, resume)
    else:
        if not param:
            raise ConfigError(
                "--param: which parameter to sweep? Fix: pass e.g. --param C"
            )
        s = load_search_spec(spec)
        runtime_curves.check_params(s, {param: None}, "--param")
        values = (
            runtime_curves.parse_param_range(range_)
            if range_
            else runtime_curves.default_param_range(s, param)
        )
        fixed = runtime_curves.resolve_params(params, s, from_run, runs_root)
        split = driver.prepare_splits(s, cfg)
        definition = runtime_curves.validation_definition(
            param, values, fixed, s.scoring
        )
        rdir = runtime_curves.new_curve_run(
            s, definition, split, runs_root, run_dir, _command()
        )
    _run(cfg, s, split, rdir, engines, max_retries, no_progress, keep_cluster)


@cli.fleet_task(
    help={"run-dir": "a run directory (runs/<run-id>): a search or a curve"}
)
def plot(c, run_dir):
    """Regenerate the plots and report.html of a run from its journal (no cluster needed)."""
    from runtime.report.html import finish_run

    out = finish_run(run_dir)
    for p in out["plots"]:
        print(f"wrote {p}")
    print(f"wrote {out['report']}")


#: What tasks.py adds: `ns.add_collection(assess_tasks.curves)`.
curves = Collection("curves", learning, validation)
