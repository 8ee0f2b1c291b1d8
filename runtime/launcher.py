"""Start N ipyparallel engines on this host, forked from one warmed-up process.

    python -m runtime.launcher --n N --pids-file FILE --log FILE -- ENGINE_ARGS...

Runs on every host (this machine for the local engines, a remote host over
SSH from fabfile.py). It imports what every engine needs (numpy, scipy,
scikit-learn's core, IPython/ipykernel, ipyparallel's engine) once, freezes
those objects out of the garbage collector, and forks the engines from it.
The engines then share those pages copy-on-write instead of holding a private
copy each, the same idea as a pre-forking web server: measured here, two idle
engines took 145 MB PSS together, against 242 MB for two engines started on
their own (plus 60 MB for their two nanny processes). The launcher
exits once the engines are running; their pids go to FILE (appended), so
`cluster.stop` kills exactly them.

Engines run without ipyparallel's per-engine "nanny" process (another
~30 MB each): the controller notices a lost engine by its heartbeat instead,
which `fleetcv.dispatch.cluster` sets to a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
import time

from runtime.pids import HAS_PROCFS, pid_alive

#: Modules imported once before forking. Missing ones are skipped: this is
#: only about sharing memory, a host without, say, scipy still runs engines.
PRELOAD = (
    "numpy",
    "scipy.sparse",
    "scipy.linalg",
    "scipy.special",
    "joblib",
    "cloudpickle",
    "psutil",
    "threadpoolctl",
    "sklearn.base",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.linear_model",
    "sklearn.svm",
    "sklearn.dummy",
    "ipykernel.ipkernel",
    "ipyparallel.engine.app",
    "runtime.worker",
)
#: What this module's processes have on their command line: fabfile.py and
#: `fleetcv.dispatch.cluster` check it before killing a recorded pid (pids get
#: reused). A prefix of this module's name that also matches the engines of
#: fleetcv before 0.4.0 (`-m runtime.engines`), so `cluster.stop` after an
#: upgrade still stops a cluster started before it.
CMDLINE_MARK = "runtime"


@contextlib.contextmanager
def patched_environ(env: dict[str, str]):
    """`env` in os.environ while the block runs: what processes started in it inherit."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def runs_with(pid: int, mark: str = CMDLINE_MARK) -> bool:
    """Whether `pid` is a live process whose command line holds `mark`.

    Recorded pids get reused by other programs: only a process started as
    the caller expects counts (a zombie has no command line, so it does not).
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return mark.encode() in f.read()
    except FileNotFoundError:
        if HAS_PROCFS:
            return False
    except OSError:
        return False
    # No procfs (a macOS laptop): psutil reads the same command line.
    import psutil

    try:
        return pid_alive(pid) and mark in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def recorded_pid(pid_file, mark: str) -> int | None:
    """The pid in `pid_file` if that process still runs with `mark` in its command line."""
    try:
        with open(pid_file) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if runs_with(pid, mark) else None


#: Arguments every engine gets (see the module docstring for the nanny).
ENGINE_DEFAULT_ARGS = ("--IPEngine.enable_nanny=False",)
#: The BLAS/OpenMP thread variables of each engine: hosts.yml's `threads`, 1 by
#: default, because engines already fill the cores one each.
ENGINE_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",  # numpy on Apple's Accelerate
)
#: jemalloc (pyarrow's allocator) without its background thread.
ARROW_NO_THREAD = ("JE_ARROW_MALLOC_CONF", "background_thread:false")
#: Seconds the launcher watches the new engines before it reports success.
SETTLE = 0.5
#: Seconds `--wait-for` waits for the controller's connection file.
WAIT_FOR_TIMEOUT = 60.0


def preload(modules=PRELOAD) -> list[str]:
    """Import `modules`; return the names that failed to import."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional speed-up, never fatal
            failed.append(name)
    return failed


def wait_for_file(path: str, timeout: float = WAIT_FOR_TIMEOUT) -> bool:
    """Wait until `path` holds a whole JSON object (a controller writes it a moment later).

    Returns False when `timeout` seconds pass first.
    """
    import json

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                # Not written in one go: a half-written file fails to parse.
                if isinstance(json.load(f), dict):
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return False


def _run_engine(engine_argv: list[str], log: str | None) -> None:
    """Body of a forked child: become an ipyparallel engine; never returns."""
    code = 1
    try:
        # Own session: no signal from the launcher's terminal or SSH session.
        os.setsid()
        if log:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        # Python reseeds `random` after a fork, numpy does not: without this
        # every engine would draw the same "random" numbers.
        import numpy as np

        np.random.seed()
        from ipyparallel.engine.app import IPEngine
        from ipyparallel.serialize import use_cloudpickle

        # As the driver (fleetcv.dispatch.cluster.connect): a class defined
        # in a notebook arrives by value and its fitted instance (the refit)
        # goes back the same way.
        use_cloudpickle()

        sys.argv = ["ipengine", *ENGINE_DEFAULT_ARGS, *engine_argv]
        IPEngine.launch_instance(argv=sys.argv[1:])
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message")
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - report, then leave without unwinding the launcher's stack
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def spawn(
    n: int, engine_argv: list[str], pids_file: str | None = None, log: str | None = None
) -> list[int]:
    """Fork `n` engines from this process; return their pids.

    Parameters
    ----------
    n : int
        Engines to start.
    engine_argv : list of str
        Arguments of `ipengine` (e.g. ``--file=.../ipcontroller-engine.json``).
    pids_file : str, optional
        Each pid is appended to it as soon as the engine exists, so a stop
        finds them even if a later fork fails.
    log : str, optional
        The engines' stdout and stderr (appended).

    Returns
    -------
    list of int
    """
    gc.collect()
    # Objects that exist now stay out of every later collection, so the
    # collector never writes to (and un-shares) their pages in the children.
    gc.freeze()
    pids = []
    for _ in range(n):
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            # All or nothing, as for engines that die at once (see main).
            _stop_survivors(pids, {})
            raise
        if pid == 0:
            _run_engine(engine_argv, log)
        pids.append(pid)
        if pids_file:
            with open(pids_file, "a") as f:
                f.write(f"{pid}\n")
    return pids


def _exited_early(pids: list[int], settle: float) -> dict[int, int]:
    """Children that exited within `settle` seconds, with their exit codes."""
    deadline = time.monotonic() + settle
    dead: dict[int, int] = {}
    while time.monotonic() < deadline and len(dead) < len(pids):
        for pid in pids:
            if pid in dead:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                dead[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return dead


def _stop_survivors(pids: list[int], dead: dict[int, int], grace: float = 5.0) -> int:
    """SIGTERM the children not in `dead`, SIGKILL those left after `grace` s; count them."""
    import signal

    survivors = [p for p in pids if p not in dead]
    for pid in survivors:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = set(survivors)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            if os.waitpid(pid, os.WNOHANG)[0]:
                left.discard(pid)
        time.sleep(0.05)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return len(survivors)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.launcher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n", type=int, required=True, help="engines to start")
    parser.add_argument("--pids-file", help="append the engine pids here")
    # Required: an engine that kept the launcher's stdout (an SSH channel)
    # would hold that channel open as long as it runs.
    parser.add_argument("--log", required=True, help="the engines' output (appended)")
    parser.add_argument(
        "--wait-for",
        help="after the imports, wait for this connection file before forking "
        "(a controller that starts beside the launcher writes it)",
    )
    parser.add_argument("engine_args", nargs="*", help="arguments of ipengine")
    return parser


def _unwritable(args: argparse.Namespace) -> str | None:
    """The message for a --pids-file or --log this process cannot append to."""
    for flag, path in (("--pids-file", args.pids_file), ("--log", args.log)):
        # Checked before any fork: a child that cannot write its log dies
        # silently, and a pid that cannot be recorded cannot be stopped.
        if path is not None:
            try:
                with open(path, "a"):
                    pass
            except OSError as exc:
                return (
                    f"runtime.launcher: {flag} {path}: {exc.strerror}. "
                    "Fix: give a writable path (absolute, or relative to "
                    f"{os.getcwd()})"
                )
    return None


def main(argv: list[str] | None = None) -> int:
    """Command line: preload, fork the engines, print their pids, exit."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n: expected a positive integer, got {args.n}")
    problem = _unwritable(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    for var in ENGINE_THREAD_VARS:
        # One BLAS thread unless the caller chose otherwise: then no BLAS
        # thread pool exists yet when the engines are forked.
        os.environ.setdefault(var, "1")
    # pyarrow's jemalloc starts a background purging thread when it loads
    # (scikit-learn imports pandas, pandas pyarrow): without it the launcher
    # is still one thread when it forks, as forking safely requires.
    os.environ.setdefault(*ARROW_NO_THREAD)
    missing = preload()
    if "ipyparallel.engine.app" in missing:
        print(
            "runtime.launcher: ipyparallel is not importable by "
            f"{sys.executable}. Fix: invoke hosts.install",
            file=sys.stderr,
        )
        return 1
    if args.wait_for and not wait_for_file(args.wait_for):
        print(
            f"runtime.launcher: the controller wrote no {args.wait_for} within "
            f"{WAIT_FOR_TIMEOUT:.0f} s. Fix: see the controller's log; invoke "
            "cluster.stop, then cluster.start",
            file=sys.stderr,
        )
        return 1
    try:
        pids = spawn(args.n, args.engine_args, args.pids_file, args.log)
    except OSError as exc:
        # spawn() already stopped the engines it had forked.
        print(
            f"runtime.launcher: could not fork the engines ({exc.strerror}); any "
            "already started were stopped. Fix: raise this host's process limit "
            "(ulimit -u, or the container's pids limit) or give it fewer engines "
            "in hosts.yml",
            file=sys.stderr,
        )
        return 1
    dead = _exited_early(pids, SETTLE)
    print(" ".join(map(str, pids)), flush=True)
    if dead:
        # All or nothing: the caller reports this host as failed and runs the
        # search without it, so none of its engines may join the search.
        stopped = _stop_survivors(pids, dead)
        where = f" (log: {args.log})" if args.log else ""
        also = f"; the other {stopped} were stopped" if stopped else ""
        print(
            f"runtime.launcher: {len(dead)} of {len(pids)} engines exited at once, "
            f"exit codes {sorted(set(dead.values()))}{where}{also}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
