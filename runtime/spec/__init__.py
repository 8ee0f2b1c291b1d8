"""Configuration: hosts.yml and search specs, validated into dataclasses, and data loading.

Runs on the driver (the laptop), and in fabfile.py for the hosts' settings.
The one loader of configuration: everything downstream receives these
validated dataclasses, never raw YAML.
"""

from runtime.spec.config import (
    DEFAULT_HOSTS,
    DEFAULT_PORTS,
    DEFAULT_WORKDIR,
    DIST_FUNCS,
    GRID_FUNCS,
    HOSTS_ENV,
    MIN_PORTS,
    ConfigError,
    ControllerSpec,
    CVSpec,
    DataSpec,
    Distribution,
    EstimatorSpec,
    HostsConfig,
    HostSpec,
    SearchSpec,
    load_data,
    load_hosts,
    load_search_spec,
    parse_hosts,
    resolve_hosts_file,
)

__all__ = [
    "DEFAULT_HOSTS",
    "DEFAULT_PORTS",
    "DEFAULT_WORKDIR",
    "DIST_FUNCS",
    "GRID_FUNCS",
    "HOSTS_ENV",
    "MIN_PORTS",
    "CVSpec",
    "ConfigError",
    "ControllerSpec",
    "DataSpec",
    "Distribution",
    "EstimatorSpec",
    "HostSpec",
    "HostsConfig",
    "SearchSpec",
    "load_data",
    "load_hosts",
    "load_search_spec",
    "parse_hosts",
    "resolve_hosts_file",
]
