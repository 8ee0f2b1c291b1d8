"""fleetcv's one error hierarchy, and the exit status of each kind of failure.

Runs everywhere on the driver side (the engine package raises plain Python
errors, recorded as failed tasks). The command line (tasks.py) maps every
`FleetcvError` to one `error: ...` line and its `exit_code`; the Python API
lets them propagate.

- `UserError` (exit 2): something the user can fix in a file, a flag or
  the environment; the message names the file/key/flag, the bad value and
  the fix.
- `HostError` (exit 1): a host, an engine, the cluster or a cloud API
  failed; the message names which one and why.
"""

from __future__ import annotations


class FleetcvError(Exception):
    """Base of every error fleetcv raises on purpose."""

    #: The exit status of the command line for this kind of error.
    exit_code = 1
    #: What the command line prints before the message.
    prefix = "error: "


class UserError(FleetcvError, ValueError):
    """A bad file, key, flag or value: the message says which and how to fix it."""

    exit_code = 2


class ConfigError(UserError):
    """hosts.yml, a search spec, a flag or a run directory is not usable as given."""


class HostError(FleetcvError, RuntimeError):
    """A host, an engine, the controller or a cloud API failed."""

    exit_code = 1


class ClusterError(UserError, RuntimeError):
    """The cluster cannot be started or reached as configured (e.g. a busy port).

    Also a RuntimeError, as before the hierarchy existed, for the Python API.
    """


class SearchError(UserError, RuntimeError):
    """A run cannot go on for a reason of the user's: it stays resumable.

    A fit raised with error_score='raise', or a refit callable failed.

    Also a RuntimeError, as before the hierarchy existed, for the Python API.
    """


class EnginesLost(HostError, RuntimeError):
    """Every engine went away under a run (hosts down, engines killed): the run stays resumable.

    Also a RuntimeError, as `SearchError` (which it was before), for the Python API.
    """


class ClusterLost(HostError):
    """The cluster went away under a run (its controller died): the run stays resumable."""


class DiskFull(HostError):
    """The run directory's disk refused a write: the run stopped, resumable once there is room."""


class SshError(HostError):
    """A remote host failed over SSH (unreachable, login refused, command failed).

    Named apart from ipyparallel's RemoteError (an engine's exception).
    """


class EngineVersionError(UserError):
    """Engines run another fleetcv version than the driver."""


class RunStopped(FleetcvError):
    """A run ended aborted (exit 130) or with holes (exit 1); it stays resumable.

    The message says how it ended and the command that resumes it; it is
    not an error line, so the command line prints it as it is.
    """

    #: Printed before the message on the command line.
    prefix = ""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
