"""SSH host keys: every connection fleetcv makes checks the host's key.

Runs on the laptop, beside the SSH backend (`fleetcv.backends.ssh`, which
uses it for every Fabric connection, rsync and tunnel); like it, it uses
paramiko, which runtime/ and the rest of fleetcv never import. Fabric 3 (paramiko) accepts any unknown key and never
reads known_hosts; the user's ssh (rsync, tunnels) follows ~/.ssh/config,
which may say anything. fleetcv sets one policy for both, from hosts.yml:

- ``host_keys: accept-new`` (the default): a host seen for the first time
  has its key recorded in the known_hosts file (trust on first use); a key
  that differs from the recorded one is refused before anything is sent.
- ``host_keys: strict``: a host must already be in known_hosts.

The known_hosts file is hosts.yml's ``known_hosts:``, else the
``UserKnownHostsFile`` that the ssh_config in use gives the host, else
~/.ssh/known_hosts, as OpenSSH picks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shlex
import sys
from pathlib import Path

from fleetcv.errors import SshError
from fleetcv.spec import HostsConfig

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: Read too when it exists, never written (as OpenSSH's GlobalKnownHostsFile).
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class HostKeyError(SshError):
    """A host's key is unknown under ``host_keys: strict``, or differs from the recorded one."""


@functools.lru_cache(maxsize=8)
def _ssh_config(path: str | None):
    from paramiko import SSHConfig

    path = path or os.path.expanduser("~/.ssh/config")
    if not os.path.isfile(path):
        return SSHConfig()
    return SSHConfig.from_path(path)


def known_hosts_files(cfg, host) -> list[str]:
    """The known_hosts files for `host` of `cfg` (the first is written to).

    Parameters
    ----------
    cfg : HostsConfig or None
        The cluster; its ``known_hosts`` and ``ssh_config`` decide.
    host : HostSpec
        The host (its address is looked up in the ssh_config).

    Returns
    -------
    list of str
        Expanded paths, at least one.
    """
    if cfg is not None and cfg.known_hosts:
        return [os.path.expanduser(cfg.known_hosts)]
    lookup = _ssh_config(cfg.ssh_config if cfg is not None else None).lookup(
        host.host or ""
    )
    files = lookup.get("userknownhostsfile")
    if files:
        return [os.path.expanduser(f) for f in shlex.split(files)]
    return [os.path.expanduser(DEFAULT_KNOWN_HOSTS)]


def policy_of(cfg) -> str:
    """The host-key policy of `cfg` (``accept-new`` when none is given)."""
    return cfg.host_keys if cfg is not None else HostsConfig.host_keys


def openssh_options(cfg, host) -> list[str]:
    """The ``ssh -o`` options that make OpenSSH apply fleetcv's policy to `host`.

    Given on the command line, they win over any ssh_config setting (ssh
    takes the first value it reads).
    """
    strict = "yes" if policy_of(cfg) == "strict" else "accept-new"
    files = " ".join(f'"{f}"' if " " in f else f for f in known_hosts_files(cfg, host))
    return [
        "-o",
        f"StrictHostKeyChecking={strict}",
        "-o",
        f"UserKnownHostsFile={files}",
    ]


def guard(client, cfg, host) -> None:
    """Make a paramiko client check `host`'s key under `cfg`'s policy.

    Loads the known_hosts files (and the system-wide one) into the client
    and installs the policy for a host not in them. Call before connecting.
    """
    import paramiko

    files = known_hosts_files(cfg, host)
    with contextlib.suppress(FileNotFoundError):
        client.load_system_host_keys(GLOBAL_KNOWN_HOSTS)
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            client.load_system_host_keys(f)
    strict = policy_of(cfg) == "strict"

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            if strict:
                raise HostKeyError(
                    f"the host key of {hostname} ({key.get_name()} {key.fingerprint}) "
                    f"is not in {files[0]}, and hosts.yml says host_keys: strict; "
                    "nothing was sent to it. Fix: check the fingerprint with the "
                    f"host's owner, then `ssh-keyscan {_keyscan_args(hostname)} >> "
                    f"{files[0]}`, or set host_keys: accept-new"
                )
            record(files[0], hostname, key)
            client.get_host_keys().add(hostname, key.get_name(), key)

    client.set_missing_host_key_policy(Policy())


def _keyscan_args(hostname: str) -> str:
    if hostname.startswith("[") and "]:" in hostname:
        addr, port = hostname[1:].split("]:", 1)
        return f"-p {port} {addr}"
    return hostname


def record(path: str, hostname: str, key) -> None:
    """Append one ``hostname type base64`` line to a known_hosts file, under a lock.

    Several hosts connect at once from threads, and other fleetcv commands
    may too: the lock keeps their lines whole.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{hostname} {key.get_name()} {key.get_base64()}\n".encode())
    finally:
        os.close(fd)
    print(
        f"fleetcv: recorded the host key of {hostname} ({key.get_name()} "
        f"{key.fingerprint}) in {path} (host_keys: accept-new)",
        file=sys.stderr,
    )


def describe_bad_key(exc, cfg, host) -> str:
    """The message for paramiko's BadHostKeyException: host, fingerprints, fix."""
    files = known_hosts_files(cfg, host)
    name = exc.hostname
    return (
        f"HOST KEY CHANGED for {name}: {files[0]} has {exc.expected_key.get_name()} "
        f"{exc.expected_key.fingerprint}, the host offered {exc.key.get_name()} "
        f"{exc.key.fingerprint}. Someone may be intercepting the connection, or the "
        "host was reinstalled; nothing was sent to it. Fix: if you know why the key "
        f"changed, remove the old one (ssh-keygen -R '{name}' -f {files[0]}) and run "
        "again"
    )


def describe_openssh_failure(stderr: str, cfg, host) -> str | None:
    """A host-key message for an OpenSSH failure (rsync, tunnel), or None."""
    if (
        "Host key verification failed" not in stderr
        and "HOST IDENTIFICATION" not in stderr
    ):
        return None
    files = known_hosts_files(cfg, host)
    if "HOST IDENTIFICATION HAS CHANGED" in stderr:
        return (
            f"HOST KEY CHANGED for {host.host}: it differs from the one in {files[0]}; "
            "nothing was sent to it. Fix: if you know why the key changed, remove the "
            f"old one (ssh-keygen -R '{host.host}' -f {files[0]}) and run again"
        )
    return (
        f"the host key of {host.host} is not in {files[0]} (host_keys: "
        f"{policy_of(cfg)}). Fix: check it and add it with ssh-keyscan, or set "
        "host_keys: accept-new"
    )
