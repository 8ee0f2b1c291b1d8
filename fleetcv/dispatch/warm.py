"""The command line's warm driver: `invoke search` without importing scikit-learn.

Runs on the laptop. A search's own work (a few tenths of a second for a small
one) is dwarfed by its imports: scikit-learn alone takes 1.3 s (scipy.stats
rewrites hundreds of docstrings as it loads), with pandas, ipyparallel and
fleetcv's driver about 2 s before the first task leaves. `invoke
cluster.start` therefore also starts a *warm driver*: a process that imports
all that once, then waits on a Unix socket. `invoke search` and `invoke
curves.*` hand their command to it before tasks.py imports anything heavy
(`hand_off`); it forks a child that runs the very same Invoke program, with
the caller's working directory, environment, umask, arguments and
terminal (the caller's stdin, stdout and stderr pass over the socket), and
the caller waits for the child's exit status and passes on the signals it
gets (Ctrl-C is SIGINT to the child, as it would be to an in-process run).
If the caller dies (SIGKILL), the child is killed too: a killed `invoke`
is a killed driver, as without the warm process.

The warm driver is the same Python and the same fleetcv source as the
caller, or it is not used: the caller sends its interpreter's path, and the
warm driver compares the size and mtime of every file of fleetcv's source
with those it started with, and exits when they changed (the caller then
runs the command itself). Nothing else is shared: each command is a fresh
fork, numpy's global random state is reseeded in it (Python's own `random`
reseeds itself after a fork), and the warm driver keeps no state between
commands. It is one per interpreter, source tree and network namespace (a socket in
~/.cache/fleetcv/warm, mode 0600, in a 0700 directory, and the peer's uid
is checked on both ends), stops taking commands with `cluster.stop` (the
commands it runs go on to their end) or after an hour without one, and
`FLEETCV_WARM=0` turns it off. A caller whose Python start-up environment
(PYTHON*, SKLEARN_*, thread counts, locale) differs from the warm
driver's runs its command itself: those are read once, as a process starts.

Only the standard library (and runtime.launcher, which imports no
more) is imported here: tasks.py imports this module before anything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from runtime.launcher import recorded_pid

#: The tasks a warm driver runs (the run tasks; every other task is quick).
WARM_TASKS = frozenset({"search", "search.run", "curves.learning", "curves.validation"})
#: "0" turns the warm driver off (never started, never used).
ENV = "FLEETCV_WARM"
#: Seconds without a command after which a warm driver exits.
IDLE_EXIT = 3600.0
#: Seconds the caller waits for the warm driver to take its command.
HANDSHAKE_TIMEOUT = 5.0
#: What the warm driver imports once, so that its children do not.
PRELOAD = (
    "numpy",
    "scipy.stats",
    "pandas",
    "sklearn.base",
    "sklearn.model_selection",
    "sklearn.metrics",
    "sklearn.datasets",
    "joblib",
    "yaml",
    "zmq",
    "ipyparallel",
    "invoke",
    "invoke.main",
    "tqdm",
    "fabric",
    "fleetcv.api",
    "fleetcv.search_cv",
    "fleetcv.dispatch.lifecycle",
)
_PROTOCOL = 2
#: The root of fleetcv's source: the folder holding runtime/, fleetcv/ and tasks.py.
ROOT = Path(__file__).resolve().parents[2]
#: Set in a warm driver's child, whose tasks.py must not hand off again.
_in_child = False


def paths() -> tuple[Path, Path]:
    """The socket and the pid file of the warm driver of this interpreter, source and netns."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    # The network namespace too: a child runs in the warm driver's, and the
    # controller's address means something only there.
    try:
        netns = os.readlink("/proc/self/ns/net")
    except OSError:
        netns = ""
    key = hashlib.sha1(f"{_interpreter()}\0{ROOT}\0{netns}".encode()).hexdigest()[:16]
    folder = base / "fleetcv" / "warm"
    return folder / f"{key}.sock", folder / f"{key}.pid"


def _interpreter() -> str:
    """The running Python: binary and environment (venv/bin/python and python3 are one)."""
    return f"{os.path.realpath(sys.executable)}\0{sys.prefix}"


#: Environment read once, as a process starts (by Python, numpy's BLAS,
#: scikit-learn): a caller whose values differ from the warm driver's runs
#: its command itself.
STARTUP_PREFIXES = ("PYTHON", "SKLEARN_", "OMP_", "OPENBLAS_", "MKL_", "LC_", "LANG")


def _startup_env(environ) -> dict:
    return {k: v for k, v in environ.items() if k.startswith(STARTUP_PREFIXES)}


def fingerprint() -> str:
    """Size and mtime of every source file of fleetcv: a change means a stale warm driver."""
    h = hashlib.sha1()
    files = sorted([*ROOT.glob("runtime/**/*.py"), *ROOT.glob("fleetcv/**/*.py")])
    files += [ROOT / name for name in ("tasks.py", "fabfile.py")]
    for path in files:
        with contextlib.suppress(OSError):
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------- caller


def _wanted(argv: list[str]) -> bool:
    """Whether `argv` (Invoke's) runs one run task, with no core flag before it."""
    if _in_child or os.environ.get(ENV) == "0" or len(argv) < 2:
        return False
    if argv[1] not in WARM_TASKS:
        return False
    # Help and completion are Invoke's own and quick.
    return not {"-h", "--help", "--complete", "-l", "--list"} & set(argv)


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    return struct.unpack("3i", creds)[1]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def hand_off(argv: list[str]) -> None:
    """Run the command `argv` in the warm driver and exit with its status, if one runs.

    Returns (doing nothing) when the command is not a run task, no warm
    driver runs for this interpreter and source, or it declines (stale
    source); the caller then runs the command itself.

    Parameters
    ----------
    argv : list of str
        Invoke's command line (`sys.argv`).
    """
    if not _wanted(argv):
        return
    sock_path, _ = paths()
    if not sock_path.exists():
        return
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        sock.connect(str(sock_path))
        if _peer_uid(sock) != os.getuid():
            return
        umask = os.umask(0o022)
        os.umask(umask)
        payload = json.dumps(
            {
                "protocol": _PROTOCOL,
                "interpreter": _interpreter(),
                "argv": argv,
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "umask": umask,
                "startup": _startup_env(os.environ),
            }
        ).encode()
        socket.send_fds(sock, [struct.pack("!I", len(payload))], [0, 1, 2])
        sock.sendall(payload)
        reply = _recv_exact(sock, 5)
    except OSError:
        sock.close()
        return
    if len(reply) != 5 or reply[:1] != b"Y":
        sock.close()
        return
    (pid,) = struct.unpack("!i", reply[1:])
    sys.exit(_wait_for(sock, pid))


def _wait_for(sock: socket.socket, pid: int) -> int:
    """The exit status of the warm driver's child `pid`; signals go on to it.

    A child killed by a signal kills this process with the same signal, as
    the command would have died in-process (a shell tells the two apart).
    """

    def forward(signum, frame):
        try:
            sock.sendall(bytes([signum]))
        except OSError:
            # The warm driver is gone: signal the child directly (same uid).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    # The command runs as long as it runs: its own waits are bounded.
    sock.settimeout(None)
    status = _recv_exact(sock, 8)
    if len(status) == 8:
        code, signum = struct.unpack("!ii", status)
        if signum:
            sys.stdout.flush()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return code
    # The warm driver died (it finishes its children before it exits when
    # stopped): wait for the child, without its status.
    import psutil

    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait()
    print(
        f"error: the warm driver ended before its command (pid {pid}); "
        "its status is lost. Fix: check the run directory, or set FLEETCV_WARM=0",
        file=sys.stderr,
    )
    return 1


# ------------------------------------------------------------------- server


def start() -> int | None:
    """Start this interpreter's warm driver unless one runs; return its pid (None if off).

    Returns at once: the warm driver listens once its imports are done
    (about 2 s); a command given before then runs in its own process.
    """
    if os.environ.get(ENV) == "0":
        return None
    sock_path, pid_path = paths()
    pid = _live_pid(pid_path)
    if pid is not None:
        return pid
    sock_path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(sock_path.parent, 0o700)
    # A killed warm driver's socket: nobody listens there any more.
    sock_path.unlink(missing_ok=True)
    with open(sock_path.parent / "warm.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetcv.dispatch.warm"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_path.write_text(f"{proc.pid}\n")
    return proc.pid


def running() -> int | None:
    """The pid of this interpreter's warm driver if one runs (listening or not yet)."""
    return _live_pid(paths()[1])


def wait_ready(timeout: float = 120.0) -> int:
    """Wait until the warm driver accepts commands; return its pid.

    A socket file alone proves nothing: a warm driver that was killed
    leaves its socket behind, and one that starts binds only after its
    imports.

    Raises
    ------
    TimeoutError
        When none accepts a connection within `timeout` seconds.
    """
    sock_path, pid_path = paths()
    deadline = time.monotonic() + timeout
    while True:
        pid = _live_pid(pid_path)
        if pid is not None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(HANDSHAKE_TIMEOUT)
                try:
                    sock.connect(str(sock_path))
                    return pid
                except OSError:
                    pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no warm driver accepts commands on {sock_path}")
        time.sleep(0.1)


def stop() -> bool:
    """Stop this interpreter's warm driver (by the pid it recorded); False if none ran."""
    sock_path, pid_path = paths()
    pid = _live_pid(pid_path)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    sock_path.unlink(missing_ok=True)
    pid_path.unlink(missing_ok=True)
    return pid is not None


def _live_pid(pid_path: Path) -> int | None:
    """The recorded pid, if that process is a warm driver that still runs."""
    return recorded_pid(pid_path, "fleetcv.dispatch.warm")


class _Server:
    """The warm driver's loop: one fork per command, exit statuses back."""

    def __init__(self, sock_path: Path):
        self.sock_path = sock_path
        self.source = fingerprint()
        self.startup = _startup_env(os.environ)
        self.children: dict[int, socket.socket] = {}
        #: Set when it stops taking commands (stopped, or its source changed):
        #: it exits once the commands it runs have ended.
        self.closing = False
        self.sel = selectors.DefaultSelector()
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        # A handler, so that SIGCHLD writes to the wakeup pipe.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: self._close())
        tmp = sock_path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(tmp))
        os.chmod(tmp, 0o600)
        self.listener.listen(16)
        # Renamed into place once listening: a caller never finds a socket
        # that refuses it while the warm driver starts.
        os.replace(tmp, sock_path)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "child")

    def _close(self) -> None:
        """Take no more commands; the running ones go on to their end."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.listener)
        self.listener.close()
        pid_path = paths()[1]
        if _live_pid(pid_path) == os.getpid():
            # Its files go now, so that a new warm driver can start at once.
            self.sock_path.unlink(missing_ok=True)
            pid_path.unlink(missing_ok=True)

    def run(self) -> None:
        last = time.monotonic()
        while not (self.closing and not self.children):
            events = self.sel.select(timeout=60)
            if self.children or events:
                last = time.monotonic()
            elif time.monotonic() - last > IDLE_EXIT:
                return
            for key, _ in events:
                if key.data == "accept":
                    if not self.closing and self._accept() == "stale":
                        self._close()
                elif key.data == "child":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    self._reap()
                elif key.data in self.children and key.fileobj.fileno() != -1:
                    # (Its child may have been reaped by an event before.)
                    self._from_caller(key.fileobj, key.data)

    def _accept(self) -> str | None:
        conn, _ = self.listener.accept()
        conn.settimeout(HANDSHAKE_TIMEOUT)
        fds: list[int] = []
        try:
            head, fds, _, _ = socket.recv_fds(conn, 4, 3)
            head += _recv_exact(conn, 4 - len(head))
            req = json.loads(_recv_exact(conn, struct.unpack("!I", head)[0]))
            stale = fingerprint() != self.source
            if (
                _peer_uid(conn) != os.getuid()
                or len(fds) != 3
                or req.get("protocol") != _PROTOCOL
                or req.get("interpreter") != _interpreter()
                or req.get("startup") != self.startup
                or stale
            ):
                conn.sendall(b"N" + bytes(4))
                return "stale" if stale else None
            pid = os.fork()
            if pid == 0:
                conn.close()
                self._child(fds, req)
            # Registered first: a caller gone before the reply (it timed out
            # and runs the command itself) must not leave a second run going.
            self.children[pid], served = conn, conn
            self.sel.register(conn, selectors.EVENT_READ, pid)
            conn = None
            try:
                served.sendall(b"Y" + struct.pack("!i", pid))
                served.settimeout(None)
            except OSError:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, struct.error):
            return None
        finally:
            for fd in fds:
                os.close(fd)
            if conn is not None:
                conn.close()
        return None

    def _from_caller(self, conn: socket.socket, pid: int) -> None:
        """A signal the caller got, or its end (EOF: it died, so does its command)."""
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        signums = list(data) if data else [signal.SIGKILL]
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
        for signum in signums:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            # (exit status, signal that killed it or 0), as a shell sees them.
            reply = (
                struct.pack("!ii", code, 0)
                if code >= 0
                else struct.pack("!ii", 128 - code, -code)
            )
            with contextlib.suppress(OSError):
                conn.sendall(reply)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
            conn.close()

    def _child(self, fds: list[int], req: dict) -> None:
        """Become the caller's command: its terminal, directory, environment, argv."""
        global _in_child
        _in_child = True
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.listener.close()
            for conn in self.children.values():
                conn.close()
            os.close(self.wake_r)
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
            sys.stdin = open(0, closefd=False)  # the caller's terminal, as fds 0-2
            sys.stdout = open(
                1, "w", buffering=1 if os.isatty(1) else -1, closefd=False
            )
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            os.umask(req["umask"])
            sys.argv = list(req["argv"])
            import numpy as np

            np.random.seed()
            code = _run_invoke(sys.argv)
        finally:
            import atexit

            with contextlib.suppress(BaseException):
                atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(BaseException):
                    stream.flush()
            os._exit(code)


def _run_invoke(argv: list[str]) -> int:
    """The caller's own entry script (`invoke`) on `argv`, as run from a shell; its status.

    The script is run as `__main__` (runpy), so fleetcv never imports Invoke
    itself; its imports are the warm driver's, already loaded.
    """
    import runpy
    import traceback

    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - printed as Python would, then the status
        traceback.print_exc()
        return 1
    return 0


def serve() -> None:
    """The warm driver's main: import, listen, fork one child per command."""
    import importlib
    import threading

    sock_path, pid_path = paths()
    for name in PRELOAD:
        # A library that is not installed (fabric on a host) is just not warm.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if threading.active_count() != 1:
        # A fork copies only the forking thread: locks held by another would
        # stay held in every child. Better no warm driver than a hung one.
        print(f"warm driver: {threading.active_count()} threads after imports; exiting")
        return
    server = _Server(sock_path)
    try:
        server.run()
    finally:
        if _live_pid(pid_path) == os.getpid():
            sock_path.unlink(missing_ok=True)
            pid_path.unlink(missing_ok=True)


if __name__ == "__main__":
    # The module proper, not this __main__ copy: its children's tasks.py
    # must see `_in_child` set.
    from fleetcv.dispatch import warm

    warm.serve()
