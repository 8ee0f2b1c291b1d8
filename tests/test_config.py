"""Unit tests of spec/hosts validation: every bad input gets its own message."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import yaml
from scipy import stats
from sklearn.model_selection import ParameterGrid, ParameterSampler

from fleetcv.spec import (
    ConfigError,
    grid_values,
    load_data,
    load_hosts,
    load_search_spec,
    parse_hosts,
)
from tests.conftest import REFERENCE_SPEC

BASE = yaml.safe_load(open(REFERENCE_SPEC))


def write_spec(tmp_path, changes=None, drop=(), name="spec.yml"):
    spec = copy.deepcopy(BASE)
    for key in drop:
        spec.pop(key)
    for key, value in (changes or {}).items():
        spec[key] = value
    p = tmp_path / name
    p.write_text(yaml.safe_dump(spec))
    return p


def test_reference_spec_candidates_match_sklearn_grid():
    spec = load_search_spec(REFERENCE_SPEC)
    expected = list(
        ParameterGrid({"C": np.logspace(-1, 2, 4), "gamma": np.logspace(-4, 0, 5)})
    )
    assert spec.candidates() == [{k: float(v) for k, v in c.items()} for c in expected]
    assert spec.cv.splitter().get_n_splits() == 5


def test_random_spec_draws_the_same_candidates_as_randomized_search(tmp_path):
    p = write_spec(
        tmp_path,
        {
            "search": "random",
            "n_iter": 10,
            "random_state": 3,
            "params": {
                "C": "loguniform(0.1, 100)",
                "gamma": "loguniform(1e-4, 1)",
                "kernel": ["rbf", "poly"],
            },
        },
    )
    spec = load_search_spec(p)
    ref = list(
        ParameterSampler(
            {
                "C": stats.loguniform(0.1, 100),
                "gamma": stats.loguniform(1e-4, 1),
                "kernel": ["rbf", "poly"],
            },
            n_iter=10,
            random_state=3,
        )
    )
    assert spec.candidates() == ref
    assert load_search_spec(p).candidates() == spec.candidates()


def test_n_iter_on_a_grid_samples_the_grid(tmp_path):
    spec = load_search_spec(REFERENCE_SPEC, n_iter=7)
    cands = spec.candidates()
    assert len(cands) == 7
    assert len({tuple(sorted(c.items())) for c in cands}) == 7


def test_pipeline_spec_addresses_step_params():
    from tests.conftest import RANDOM_SPEC

    spec = load_search_spec(RANDOM_SPEC)
    est = spec.estimator.build()
    assert [name for name, _ in est.steps] == ["scale", "svc"]
    assert all(set(c) == {"svc__C", "svc__gamma"} for c in spec.candidates())


# (changes to the reference spec, expected message pattern)
BAD_SPECS = [
    (
        {"estimator": {"class": "sklearn.svm.NoSuchSVC"}},
        r"estimator\.class: cannot import 'sklearn\.svm\.NoSuchSVC'",
    ),
    (
        {"estimator": {"class": "SVC"}},
        r"estimator\.class: expected an import path like sklearn\.svm\.SVC",
    ),
    (
        {"estimator": {"class": "sklearn.svm.SVC", "params": {"Cee": 1}}},
        r"estimator\.params\.Cee: sklearn\.svm\.SVC has no parameter 'Cee'",
    ),
    ({"estimator": {"class": "numpy.array"}}, r"is not a scikit-learn estimator"),
    (
        {"estimator": {"pipeline": [{"name": "a__b", "class": "sklearn.svm.SVC"}]}},
        r"pipeline\[0\]\.name: expected a unique step name",
    ),
    ({"params": {"Cx": [1, 2]}}, r"params\.Cx: the estimator has no parameter 'Cx'"),
    ({"params": {}}, r"params: expected a non-empty mapping"),
    ({"params": {"C": []}}, r"params\.C: empty list of values"),
    (
        {"cv": {"class": "sklearn.model_selection.NoSuchSplit"}},
        r"cv\.class: cannot import 'sklearn\.model_selection\.NoSuchSplit'",
    ),
    (
        {"cv": {"class": "sklearn.svm.SVC"}},
        r"cv\.class: sklearn\.svm\.SVC is not a cross-validation splitter",
    ),
    (
        {"cv": {"class": "sklearn.model_selection.KFold", "params": {"folds": 3}}},
        r"cv\.params: sklearn\.model_selection\.KFold refuses \{'folds': 3\}",
    ),
    (
        {"cv": {"class": "sklearn.model_selection.KFold", "n_splits": 3}},
        r"cv\.n_splits: with cv\.class the splitter's own parameters go under cv\.params",
    ),
    (
        {
            "cv": {"class": "sklearn.model_selection.GroupKFold"},
            "data": {"path": "x.csv"},
        },
        r"cv\.class: sklearn\.model_selection\.GroupKFold splits by groups, and "
        r"data\.groups is not set\. Fix: add the group labels",
    ),
    (
        {"params": {"C": "linspace(0, 1, -1)"}},
        r"params\.C: 'linspace\(0, 1, -1\)': Number of samples, -1, must be non-negative\. "
        r"Fix: see numpy\.linspace",
    ),
    (
        {"params": {"C": "arange(1, 2, 0)"}},
        r"params\.C: 'arange\(1, 2, 0\)': .*Fix: see numpy\.arange",
    ),
    (
        {"params": {"C": ["logspace(-1, 1, 3)"]}},
        r"params\.C: the list item 'logspace\(-1, 1, 3\)' gives 3 values, and a list "
        r"item is one value\. Fix: write C: logspace\(-1, 1, 3\) \(without the brackets\)",
    ),
    (
        {"params": {"C": "loguniform(1, 10)"}},
        r"params\.C: 'loguniform\(1, 10\)' is a distribution, which a grid search cannot enumerate",
    ),
    (
        {"params": {"C": "logspice(1, 2, 3)"}},
        r"params\.C: cannot read 'logspice\(1, 2, 3\)'",
    ),
    (
        {"params": {"C": 1.0}},
        r"params\.C: expected a list of values or an expression, got 1\.0",
    ),
    (
        {"search": "random", "n_iter": 0, "params": {"C": "loguniform(1, 10)"}},
        r"n_iter: expected a positive integer, got 0",
    ),
    (
        {"search": "random", "n_iter": -3, "params": {"C": "loguniform(1, 10)"}},
        r"n_iter: expected a positive integer, got -3",
    ),
    (
        {"search": "random", "params": {"C": "loguniform(1, 10)"}},
        r"n_iter: a random search needs a budget",
    ),
    (
        {"search": "random", "n_iter": 5, "params": {"C": "loguniform(0, 10)"}},
        r"params\.C: 'loguniform\(0, 10\)': need 0 < low < high",
    ),
    (
        {"search": "random", "n_iter": 5, "params": {"C": "randint(1.5, 10)"}},
        r"randint needs integers",
    ),
    (
        {"search": "bayes"},
        r"search: expected grid, random, halving, asha, optuna or hyperband, got 'bayes'",
    ),
    ({"n_iter": 21}, r"n_iter: 21 is more than the 20 candidates of the grid"),
    ({"scoring": "acuracy"}, r"scoring: unknown scoring 'acuracy'"),
    ({"cv": {"n_splits": 0}}, r"cv\.n_splits: expected an integer >= 1, got 0"),
    ({"cv": {"test_size": 1.5}}, r"cv\.test_size: expected a fraction in \(0, 1\)"),
    ({"cv": {"kind": "loo"}}, r"cv\.kind: expected shuffle or kfold, got 'loo'"),
    (
        {"cv": {"kind": "kfold", "test_size": 0.2}},
        r"cv\.test_size: KFold has no test_size",
    ),
    ({"cv": {"stratify": True}}, r"cv\.stratify: unknown key"),
    (
        {"data": {"loader": "sklearn.datasets.load_nothing"}},
        r"data\.loader: cannot import",
    ),
    ({"data": {"path": "x.feather"}}, r"data\.path: unsupported file type '\.feather'"),
    (
        {"data": {"path": "x.csv", "loader": "sklearn.datasets.load_digits"}},
        r"data: give exactly one of loader or path",
    ),
    (
        {"error_score": "ignore"},
        r"error_score: expected a number, nan or raise, got 'ignore'",
    ),
    (
        {"return_train_score": "yes"},
        r"return_train_score: expected true or false, got 'yes'",
    ),
    ({"colour": "blue"}, r"colour: unknown key"),
]


@pytest.mark.parametrize(
    "changes,pattern", BAD_SPECS, ids=[p[:40] for _, p in BAD_SPECS]
)
def test_bad_spec_is_refused_with_a_clear_message(tmp_path, changes, pattern):
    p = write_spec(tmp_path, changes)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_search_spec(p)
    # Every message names the file and a fix.
    assert str(p) in str(info.value) and "Fix:" in str(info.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yml: search spec file not found"):
        load_search_spec(tmp_path / "nope.yml")


def test_spec_that_is_not_yaml(tmp_path):
    p = tmp_path / "s.yml"
    p.write_text("estimator: [unclosed\n")
    with pytest.raises(ConfigError, match=r"s\.yml: not valid YAML"):
        load_search_spec(p)


def _data_spec(tmp_path, data_file, **extra):
    return load_search_spec(
        write_spec(tmp_path, {"data": {"path": str(data_file), **extra}})
    )


def test_csv_data_with_named_target(tmp_path):
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.array([0, 1] * 10)
    f = tmp_path / "d.csv"
    f.write_text(
        "a,label,b\n"
        + "\n".join(f"{a},{t},{b}" for (a, b), t in zip(X, y, strict=True))
    )
    X2, y2 = load_data(_data_spec(tmp_path, f, target="label"))
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


BAD_DATA = [
    (
        "nan.npy",
        lambda p: np.save(p, np.array([[np.nan, 1.0, 0], [1, 2, 1]] * 10)),
        {},
        r"estimator: X holds 10 NaN values and SVC does not accept NaN \(scikit-learn "
        r"would fail every fit\)\. Fix: impute them",
    ),
    (
        "one.npy",
        lambda p: np.save(p, np.array([[0.5, 1.0, 1], [1, 2, 1]] * 10)),
        {},
        r"y has a single class",
    ),
    (
        "short.npz",
        lambda p: np.savez(p, X=np.ones((10, 2)), y=np.arange(9) % 2),
        {},
        r"X has 10 rows but y has shape \(9,\)",
    ),
    (
        "keys.npz",
        lambda p: np.savez(p, A=np.ones((10, 2))),
        {},
        r"holds arrays \['A'\], expected X and y",
    ),
    (
        "few.npy",
        lambda p: np.save(p, np.array([[0.5, 1.0, 0], [1, 2, 1]] * 2)),
        {},
        r"cv\.n_splits: 4 samples are too few for 5 folds",
    ),
    (
        "col.csv",
        lambda p: p.write_text("a,b,y\n1,1,0\n2,2,1\n"),
        {"target": "label"},
        r"data\.target: no column named 'label'",
    ),
    ("missing.npy", None, {}, r"data\.path: .*missing\.npy does not exist"),
    ("bad.npy", lambda p: p.write_bytes(b"not numpy"), {}, r"data\.path: cannot read"),
]


@pytest.mark.parametrize(
    "name,make,extra,pattern", BAD_DATA, ids=[b[0] for b in BAD_DATA]
)
def test_bad_data_is_refused(tmp_path, name, make, extra, pattern):
    f = tmp_path / name
    if make:
        make(f)
    with pytest.raises(ConfigError, match=pattern):
        load_data(_data_spec(tmp_path, f, **extra))


# ------------------------------------------------------------------ hosts

GOOD_HOST = {
    "name": "node1",
    "address": "ubuntu@10.0.0.11:2222",
    "engines": 4,
    "workdir": "/mnt/fcv",
}

BAD_HOSTS = [
    (
        {"hosts": [{**GOOD_HOST, "workdir": "fleetcv"}]},
        r"hosts\[0\]\.workdir: expected an absolute path or one under ~, got 'fleetcv'\. "
        r"Fix: write e\.g\. workdir: ~/fleetcv",
    ),
    (
        {"controller": {"task_hwm": 0}, "hosts": [GOOD_HOST]},
        r"controller\.task_hwm: expected a positive integer, got 0",
    ),
    (
        {"hosts": [GOOD_HOST, {**GOOD_HOST}]},
        r"hosts\[1\]\.name: duplicate host name 'node1'",
    ),
    (
        {"hosts": [{**GOOD_HOST, "threads": "all"}]},
        r"hosts\[0\]\.threads: expected a positive integer, got 'all'\. "
        r"Fix: set hosts\[0\]\.threads to a positive integer",
    ),
    (
        {"controller": {"heartbeat_seconds": 0}, "hosts": [GOOD_HOST]},
        r"controller\.heartbeat_seconds: expected a number >= 0\.1, got 0\. "
        r"Fix: set controller\.heartbeat_seconds to a number of seconds >= 0\.1",
    ),
    (
        {"controller": {"heartbeat_misses": 1.5}, "hosts": [GOOD_HOST]},
        r"controller\.heartbeat_misses: expected a positive integer, got 1\.5",
    ),
    (
        {"hosts": [{"name": "node1", "engines": 2}]},
        r"hosts\[0\]\.address: host 'node1' is not local and has no address",
    ),
    (
        {"hosts": [{**GOOD_HOST, "engines": -1}]},
        r'hosts\[0\]\.engines: expected a positive integer or "auto", got -1',
    ),
    (
        {"hosts": [{**GOOD_HOST, "engines": 0}]},
        r"hosts\[0\]\.engines: expected a positive integer",
    ),
    ({"hosts": [{**GOOD_HOST, "cores": 2}]}, r"hosts\[0\]\.cores: unknown key"),
    (
        {"hosts": [{**GOOD_HOST, "password": "hunter2"}]},
        r"hosts\[0\]\.password: passwords are never read",
    ),
    (
        {"hosts": [{**GOOD_HOST, "address": "a@b@c"}]},
        r"hosts\[0\]\.address: expected \[user@\]host\[:port\]",
    ),
    (
        {"hosts": [{**GOOD_HOST, "name": "bad name;rm"}]},
        r"hosts\[0\]\.name: expected a host name",
    ),
    ({"hosts": []}, r"hosts: expected a non-empty list"),
    (
        {"controller": {"ip": "0.0.0.0"}, "hosts": [GOOD_HOST]},
        r"controller\.ip: 0\.0\.0\.0 listens on every interface",
    ),
    (
        {
            "controller": {"ip": "0.0.0.0", "allow_any_interface": "yes"},
            "hosts": [GOOD_HOST],
        },
        r"controller\.allow_any_interface: expected true or false, got 'yes'\. "
        r"Fix: write allow_any_interface: true or allow_any_interface: false",
    ),
    (
        {"controller": {"ports": [55000, 55005]}, "hosts": [GOOD_HOST]},
        r"controller\.ports: \[55000, 55005\] holds 6 ports",
    ),
    (
        {"controller": {"ports": [80, 55005]}, "hosts": [GOOD_HOST]},
        r"controller\.ports: expected \[first, last\]",
    ),
    (
        {"controller": {"curve": "yes"}, "hosts": [GOOD_HOST]},
        r"controller\.curve: expected true or false",
    ),
    (
        {"controller": {"tunnel": "yes"}, "hosts": [GOOD_HOST]},
        r"controller\.tunnel: expected true or false, got 'yes'\. "
        r"Fix: write tunnel: true or tunnel: false",
    ),
    ({"controller": {"ipp": 1}, "hosts": [GOOD_HOST]}, r"controller\.ipp: unknown key"),
    (
        {"hosts": [{"name": "a", "local": True}, {"name": "b", "local": True}]},
        r"hosts: more than one host has local: true",
    ),
    # Every spelling of "any interface" is caught; strings are no booleans.
    *[
        (
            {"controller": {"ip": ip}, "hosts": [GOOD_HOST]},
            rf"controller\.ip: {shown} listens on every interface",
        )
        for ip, shown in [
            ("::0", "::"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("*", r"\*"),
            ("0.0.0.0", r"0\.0\.0\.0"),
        ]
    ],
    *[
        (
            {"controller": {"ip": ip}, "hosts": [GOOD_HOST]},
            rf"controller\.ip: expected an IP address of this machine, got {shown}\. "
            r"Fix: write the address the engines connect to",
        )
        for ip, shown in [(0, "0"), ("0", "'0'"), ("my laptop", "'my laptop'")]
    ],
    (
        {
            "controller": {"ip": "0.0.0.0", "allow_any_interface": "false"},
            "hosts": [GOOD_HOST],
        },
        r"controller\.allow_any_interface: expected true or false, got 'false'",
    ),
    (
        {"hosts": [{"name": "a", "local": "false", "address": "h"}]},
        r"hosts\[0\]\.local: expected true or false, got 'false'\. "
        r"Fix: write local: true or local: false",
    ),
    *[
        (
            {"hosts": [{**GOOD_HOST, "address": address}]},
            rf"hosts\[0\]\.address: {pattern}",
        )
        for address, pattern in [
            ("-oProxyCommand=sh", r"the host '-oProxyCommand=sh' is neither an IP"),
            ("root@-h", r"the host '-h' is neither an IP address nor a DNS name"),
            ("$(reboot)@10.0.0.1", r"the user '\$\(reboot\)' is not a login name"),
            ("-l@10.0.0.1", r"the user '-l' is not a login name"),
            ("root@a;b", r"the host 'a;b' is neither"),
            ("root@h:0", r"port 0 is outside 1-65535"),
            ("root@h:99999", r"port 99999 is outside 1-65535"),
        ]
    ],
    (
        {"host_keys": "no", "hosts": [GOOD_HOST]},
        r"host_keys: expected one of accept-new, strict, got 'no'\. "
        r"Fix: write host_keys: accept-new",
    ),
    (
        {"known_hosts": 3, "hosts": [GOOD_HOST]},
        r"known_hosts: expected a file path, got 3",
    ),
]


@pytest.mark.parametrize("data,pattern", BAD_HOSTS, ids=[p[:40] for _, p in BAD_HOSTS])
def test_bad_hosts_file_is_refused(tmp_path, data, pattern):
    p = tmp_path / "hosts.yml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=pattern) as info:
        load_hosts(p)
    assert str(p) in str(info.value)


def test_any_interface_allowed_when_asked():
    cfg = parse_hosts(
        {
            "controller": {"ip": "0.0.0.0", "allow_any_interface": True},
            "hosts": [GOOD_HOST],
        },
        "h",
    )
    assert cfg.controller.ip == "0.0.0.0"


def test_host_key_policy_and_known_hosts(tmp_path):
    from fleetcv.backends import hostkeys

    default = parse_hosts({"hosts": [GOOD_HOST]}, "h")
    assert (default.host_keys, default.known_hosts) == ("accept-new", None)
    host = default.hosts[0]
    # No ssh_config entry: OpenSSH's own default file.
    conf = tmp_path / "ssh_config"
    conf.write_text(
        "Host other\n    UserKnownHostsFile /nowhere\n"
        f"Host {host.host}\n    UserKnownHostsFile {tmp_path}/a {tmp_path}/b\n"
    )
    with_conf = parse_hosts({"ssh_config": str(conf), "hosts": [GOOD_HOST]}, "h")
    assert hostkeys.known_hosts_files(with_conf, host) == [
        f"{tmp_path}/a",
        f"{tmp_path}/b",
    ]
    assert hostkeys.openssh_options(with_conf, host) == [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={tmp_path}/a {tmp_path}/b",
    ]
    strict = parse_hosts(
        {
            "ssh_config": str(conf),
            "host_keys": "strict",
            "known_hosts": "~/kh",
            "hosts": [GOOD_HOST],
        },
        "h",
    )
    assert hostkeys.openssh_options(strict, host) == [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={os.path.expanduser('~/kh')}",
    ]


def test_threads_and_heartbeat_defaults_and_settings():
    default = parse_hosts({"hosts": [GOOD_HOST]}, "h")
    assert default.hosts[0].threads == 1
    assert (
        default.controller.heartbeat_seconds,
        default.controller.heartbeat_misses,
    ) == (0.5, 20)
    cfg = parse_hosts(
        {
            "controller": {"heartbeat_seconds": 5, "heartbeat_misses": 12},
            "hosts": [{**GOOD_HOST, "threads": 4}],
        },
        "h",
    )
    assert cfg.hosts[0].threads == 4
    assert (cfg.controller.heartbeat_seconds, cfg.controller.heartbeat_misses) == (
        5.0,
        12,
    )


def test_address_parts_and_auto_engines():
    cfg = parse_hosts(
        {"hosts": [GOOD_HOST, {"name": "me", "local": True, "engines": "auto"}]}, "h"
    )
    node = cfg.hosts[0]
    assert (node.user, node.host, node.port) == ("ubuntu", "10.0.0.11", 2222)
    assert cfg.local_host.engines >= 1
    with pytest.raises(ConfigError, match=r"--only: no host named 'nod2'"):
        cfg.only("node1,nod2")


def test_hosts_file_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "cluster.yml"
    p.write_text(yaml.safe_dump({"hosts": [GOOD_HOST]}))
    monkeypatch.setenv("FLEETCV_HOSTS", str(p))
    assert load_hosts(None).hosts[0].name == "node1"
    monkeypatch.setenv("FLEETCV_HOSTS", str(tmp_path / "gone.yml"))
    with pytest.raises(ConfigError, match=r"gone\.yml: hosts file not found"):
        load_hosts(None)


def test_grid_values_gives_plain_numbers_or_none():
    values = grid_values("logspace(-4, 0, 5)")
    assert values == [float(v) for v in np.logspace(-4, 0, 5)]
    assert all(type(v) is float for v in values)
    assert grid_values(" arange( 0, 3 ) ") == [0, 1, 2]
    assert all(type(v) is int for v in grid_values("arange(3)"))
    assert grid_values("arange(1, 1)") == []
    for text in ("[0.1, 1, 10]", "loguniform(1e-3, 1)", "foo(1)", "logspace", ""):
        assert grid_values(text) is None


@pytest.mark.parametrize(
    "text, exc, pattern",
    [
        ("logspace(a, 1)", ValueError, r"malformed node"),
        ("logspace(1,, 2)", SyntaxError, r"invalid syntax"),
        ("logspace(1, 2, 3.5)", TypeError, r"cannot be interpreted as an integer"),
        ("linspace(0, 1, -1)", ValueError, r"must be non-negative"),
    ],
)
def test_grid_values_raises_as_numpy_does(text, exc, pattern):
    with pytest.raises(exc, match=pattern):
        grid_values(text)


def test_spec_grid_expressions_use_grid_values(tmp_path):
    p = write_spec(tmp_path, {"params": {"C": "geomspace(1, 100, 3)"}})
    assert load_search_spec(p).params == ({"C": grid_values("geomspace(1, 100, 3)")},)
    p = write_spec(tmp_path, {"params": {"C": "logspace(1, 2, 3.5)"}})
    with pytest.raises(
        ConfigError, match=r"params\.C: 'logspace\(1, 2, 3\.5\)': 'float' object"
    ):
        load_search_spec(p)


def test_any_splitter_by_import_path(tmp_path):
    from sklearn.model_selection import TimeSeriesSplit

    p = write_spec(
        tmp_path,
        {
            "cv": {
                "class": "sklearn.model_selection.TimeSeriesSplit",
                "params": {"n_splits": 4, "gap": 2},
            }
        },
    )
    spec = load_search_spec(p)
    splitter = spec.cv.splitter()
    assert isinstance(splitter, TimeSeriesSplit) and splitter.gap == 2
    assert spec.cv.n_splits == 4
    # The fold digest covers the class and its parameters, and only them.
    assert spec.cv.as_dict() == {
        "class": "sklearn.model_selection.TimeSeriesSplit",
        "params": {"n_splits": 4, "gap": 2},
    }


def test_every_example_spec_in_searches_loads():
    from pathlib import Path

    from fleetcv.spec import load_search_spec

    specs = sorted((Path(__file__).parent.parent / "searches").glob("*.yml"))
    kinds = {load_search_spec(p).search for p in specs}
    assert kinds == {"grid", "random", "halving", "asha", "optuna", "hyperband"}
