"""fleetcv.ec2 and the ec2.* tasks against moto's EC2 server on 127.0.0.1.

The server is started once per module on a free port. Instead of resetting it
(moto rebuilds its whole EC2 catalogue after a reset, seconds per test), each
test works on a cluster name of its own and checks "nothing created" against a
snapshot of the server's instances. Instances under moto have made-up public
addresses that nothing answers on, so every launch injects the SSH wait:
nothing here sends a packet anywhere but 127.0.0.1. The SSH side (install, engines, push) is what the
multi-host tests cover on the namespace cluster.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re

import pytest
import yaml
from invoke import Context, Exit

import tasks
from fleetcv import ec2 as fe
from fleetcv.backends import ssh
from fleetcv.ec2 import catalog
from fleetcv.spec import ConfigError, parse_hosts

moto_server = pytest.importorskip("moto.server")

REGION = "us-east-1"
#: An Ubuntu image that moto ships (its catalogue is old; the id is all we need).
AMI = "ami-1e749f67"
CIDR = "203.0.113.7/32"


@pytest.fixture(scope="module")
def endpoint():
    # werkzeug logs every request to stderr; the tests' output is enough.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(
        ip_address="127.0.0.1", port=0, verbose=False
    )
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(endpoint, monkeypatch, tmp_path):
    """Dummy credentials, no AWS config files, no metadata service, no real host."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        fe.ENDPOINT_ENV,
        "FLEETCV_HOSTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv(
        "AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials")
    )
    # Never ask 169.254.169.254 for credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Anything that would reach for a real host fails the test instead.
    monkeypatch.setattr(fe, "default_wait_reachable", _no_network)
    monkeypatch.setattr(fe, "public_ip", _no_network)
    return endpoint


_names = itertools.count()


@pytest.fixture(name="name")
def _unique_name():
    """A cluster name no other test of this module uses."""
    return f"t{next(_names)}"


def _no_network(*a, **k):
    raise AssertionError("a test tried to reach a real host")


@pytest.fixture(scope="module")
def _client(endpoint):
    import boto3

    # Explicit dummy keys: this client checks moto's state whatever a test
    # does to the environment's credentials.
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def client(aws, _client):
    return _client


class Reach:
    """An injected SSH wait that records which addresses it was asked for."""

    def __init__(self):
        self.seen = []

    def __call__(self, host):
        self.seen.append(host)


def hosts_yml(tmp_path, extra_hosts=()):
    """A hosts file with a controller, this machine and a plain SSH host."""
    path = tmp_path / "hosts.yml"
    data = {
        "controller": {"ip": "10.0.0.5", "ports": [55000, 55039], "curve": True},
        "hosts": [
            {
                "name": "localhost",
                "local": True,
                "engines": 2,
                "workdir": "~/.cache/fleetcv",
            },
            {
                "name": "box",
                "address": "me@10.0.0.11",
                "engines": 8,
                "workdir": "/srv/fleetcv",
            },
            *extra_hosts,
        ],
    }
    path.write_text(
        "# my cluster\n# (hand-written)\n" + yaml.safe_dump(data, sort_keys=False)
    )
    return path


def parse_written(path):
    """The written file through fleetcv's own validator.

    Once fleetcv.spec allows `ec2_instance_id`, the file parses as it is;
    until then the marker is taken out first, and everything else must pass.
    """
    data = yaml.safe_load(path.read_text())
    try:
        return parse_hosts(data, str(path))
    except ConfigError as exc:
        if fe.MARKER not in str(exc):
            raise
    for h in data["hosts"]:
        h.pop(fe.MARKER, None)
    return parse_hosts(data, str(path))


def launch(aws, tmp_path, cluster, count=2, **kw):
    kw.setdefault("instance_type", "c5.xlarge")
    kw.setdefault("ami", AMI)
    kw.setdefault("ssh_cidr", CIDR)
    kw.setdefault("key_name", None)
    return fe.up(
        count,
        region=REGION,
        endpoint_url=kw.pop("endpoint_url", aws),
        hosts_file=kw.pop("hosts_file", tmp_path / "hosts.yml"),
        wait_reachable=kw.pop("wait_reachable", Reach()),
        cluster=cluster,
        poll=0.01,
        progress=False,
        **kw,
    )


def instances(client, **filters):
    out = []
    flt = [{"Name": k, "Values": v} for k, v in filters.items()]
    for r in client.describe_instances(Filters=flt)["Reservations"]:
        out.extend(r["Instances"])
    return {i["InstanceId"]: i for i in out}


def tags(d):
    return {t["Key"]: t["Value"] for t in d.get("Tags", [])}


# ------------------------------------------------------------------------- up


def test_up_on_demand_writes_hosts_and_locks_down_the_group(
    aws, name, client, tmp_path
):
    path = hosts_yml(tmp_path)
    reach = Reach()
    res = launch(aws, tmp_path, name, count=2, hosts_file=path, wait_reachable=reach)

    assert len(res.instance_ids) == 2 and not res.unreachable
    insts = instances(client, **{"tag:fleetcv:cluster": [name]})
    assert set(insts) == set(res.instance_ids)
    for i in insts.values():
        assert i["State"]["Name"] == "running"
        assert i.get("InstanceLifecycle") != "spot"
        assert i["InstanceType"] == "c5.xlarge" and i["ImageId"] == AMI
        assert [g["GroupId"] for g in i["SecurityGroups"]] == [res.security_group_id]
    # The SSH wait was asked about every new host, by its public address.
    assert sorted(reach.seen) == sorted(i["PublicIpAddress"] for i in insts.values())

    text = path.read_text()
    assert text.startswith("# my cluster\n# (hand-written)\n")
    cfg = parse_written(path)
    assert cfg.controller.ip == "10.0.0.5" and cfg.controller.curve
    assert [h.name for h in cfg.hosts][:2] == ["localhost", "box"]
    data = yaml.safe_load(text)
    ec2_hosts = [h for h in data["hosts"] if fe.MARKER in h]
    assert {h[fe.MARKER] for h in ec2_hosts} == set(res.instance_ids)
    for h in ec2_hosts:
        inst = insts[h[fe.MARKER]]
        assert h["name"] == f"{name}-{inst['InstanceId'][-8:]}"
        assert h["address"] == f"ubuntu@{inst['PublicIpAddress']}"
        assert h["engines"] == 4  # c5.xlarge has 4 vCPUs
        assert h["workdir"] == "/mnt/fleetcv"
    spec = {h.name: h for h in cfg.hosts}[ec2_hosts[0]["name"]]
    assert spec.user == "ubuntu" and spec.engines == 4 and not spec.local

    sg = client.describe_security_groups(GroupIds=[res.security_group_id])[
        "SecurityGroups"
    ][0]
    assert tags(sg)[fe.TAG_CLUSTER] == name
    assert tags(sg)["fleetcv:market"] == "on-demand"
    rules = {(p["FromPort"], p["ToPort"]): p for p in sg["IpPermissions"]}
    assert set(rules) == {(22, 22), (55000, 55039)}
    assert [r["CidrIp"] for r in rules[22, 22]["IpRanges"]] == [CIDR]
    assert [g["GroupId"] for g in rules[22, 22]["UserIdGroupPairs"]] == [sg["GroupId"]]
    assert rules[55000, 55039]["IpRanges"] == []
    assert [g["GroupId"] for g in rules[55000, 55039]["UserIdGroupPairs"]] == [
        sg["GroupId"]
    ]
    # Nothing secret in the file.
    assert "testing" not in text and "aws_" not in text.lower()


def test_up_spot_with_max_price(aws, name, client, tmp_path):
    res = launch(
        aws,
        tmp_path,
        name,
        count=2,
        spot=True,
        max_price=0.05,
        instance_type="m5.large",
    )
    insts = instances(client, **{"tag:fleetcv:cluster": [name]})
    assert set(insts) == set(res.instance_ids)
    assert {i["InstanceLifecycle"] for i in insts.values()} == {"spot"}
    assert {h["engines"] for h in res.hosts} == {2}
    sg_tags = tags(
        client.describe_security_groups(GroupIds=[res.security_group_id])[
            "SecurityGroups"
        ][0]
    )
    assert (
        sg_tags["fleetcv:market"] == "spot" and sg_tags["fleetcv:max-price"] == "0.05"
    )
    # A new file gets fleetcv's default controller, tunneled (the laptop is
    # out of the instances' reach), and only the EC2 hosts.
    cfg = parse_written(tmp_path / "hosts.yml")
    assert cfg.controller.ports == (55000, 55039)
    assert cfg.controller.ip == "127.0.0.1" and cfg.controller.tunnel
    assert len(cfg.hosts) == 2 and not cfg.local_host


def test_up_again_reuses_the_group_and_default_ami_lookup(
    aws, name, client, tmp_path, monkeypatch
):
    # moto's catalogue has no 24.04 image: look for its 14.04 one the same way.
    monkeypatch.setattr(
        catalog,
        "UBUNTU_NAME",
        "ubuntu/images/hvm-ssd/ubuntu-trusty-14.04-{arch}-server-*",
    )
    first = launch(aws, tmp_path, name, count=1, ami=None)
    assert instances(client)[first.instance_ids[0]]["ImageId"] == AMI
    # A second up of the same cluster needs no --ssh-cidr: the group exists.
    second = launch(aws, tmp_path, name, count=1, ssh_cidr=None)
    assert second.security_group_id == first.security_group_id
    groups = client.describe_security_groups(
        Filters=[{"Name": "tag:fleetcv:cluster", "Values": [name]}]
    )
    assert len(groups["SecurityGroups"]) == 1
    assert len(parse_written(tmp_path / "hosts.yml").hosts) == 2


def test_up_in_a_subnet(aws, name, client, tmp_path):
    vpc = client.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"][
        "SubnetId"
    ]
    res = launch(aws, tmp_path, name, count=1, subnet=subnet)
    inst = instances(client)[res.instance_ids[0]]
    assert inst["SubnetId"] == subnet and inst["VpcId"] == vpc
    # In a subnet the group goes on the network interface (with a public IP).
    nic = inst["NetworkInterfaces"][0]
    assert [g["GroupId"] for g in nic["Groups"]] == [res.security_group_id]
    assert res.hosts[0]["address"] == f"ubuntu@{inst['PublicIpAddress']}"
    sg = client.describe_security_groups(GroupIds=[res.security_group_id])
    assert sg["SecurityGroups"][0]["VpcId"] == vpc
    # grow launches into the same subnet.
    grown = fe.grow(
        1,
        cluster=name,
        region=REGION,
        endpoint_url=aws,
        hosts_file=tmp_path / "hosts.yml",
        wait_reachable=Reach(),
        poll=0.01,
        progress=False,
    )
    assert instances(client)[grown.instance_ids[0]]["SubnetId"] == subnet
    with pytest.raises(ConfigError, match=r"^--subnet: EC2 rejected 'subnet-nope'"):
        launch(aws, tmp_path, name + "x", count=1, subnet="subnet-nope")


def test_ssh_cidr_auto_uses_the_injected_detector(aws, name, client, tmp_path):
    res = launch(
        aws, tmp_path, name, count=1, ssh_cidr="auto", detect_ip=lambda: "198.51.100.9"
    )
    sg = client.describe_security_groups(GroupIds=[res.security_group_id])[
        "SecurityGroups"
    ][0]
    cidrs = [r["CidrIp"] for p in sg["IpPermissions"] for r in p["IpRanges"]]
    assert cidrs == ["198.51.100.9/32"]


def test_endpoint_from_environment(aws, name, client, tmp_path, monkeypatch):
    monkeypatch.setenv(fe.ENDPOINT_ENV, aws)
    res = fe.up(
        1,
        "t3.micro",
        ami=AMI,
        region=REGION,
        ssh_cidr=CIDR,
        hosts_file=tmp_path / "hosts.yml",
        wait_reachable=Reach(),
        cluster=name,
        poll=0.01,
        progress=False,
    )
    assert set(instances(client, **{"tag:fleetcv:cluster": [name]})) == set(
        res.instance_ids
    )


def test_unreachable_hosts_are_reported_but_recorded(aws, name, client, tmp_path):
    def refuse(host):
        raise OSError("connection refused")

    with pytest.raises(
        fe.Ec2Error, match=r"SSH did not answer on 2 of 2 new hosts.*invoke ec2.down"
    ):
        launch(aws, tmp_path, name, count=2, wait_reachable=refuse)
    # Running and billed: the hosts file still lists them, and down finds them.
    assert len(parse_written(tmp_path / "hosts.yml").hosts) == 2
    assert (
        len(
            fe.down(
                cluster=name,
                region=REGION,
                endpoint_url=aws,
                hosts_file=tmp_path / "hosts.yml",
                poll=0.01,
                progress=False,
            ).terminated
        )
        == 2
    )


# ----------------------------------------------------------------------- grow


def test_grow_adds_hosts_with_the_clusters_settings(aws, name, client, tmp_path):
    path = hosts_yml(tmp_path)
    first = launch(
        aws,
        tmp_path,
        name,
        count=1,
        hosts_file=path,
        spot=True,
        instance_type="c5.2xlarge",
        workdir="/mnt/w",
        user="admin",
    )
    reach = Reach()
    grown = fe.grow(
        2,
        cluster=name,
        region=REGION,
        endpoint_url=aws,
        hosts_file=path,
        wait_reachable=reach,
        poll=0.01,
        progress=False,
    )
    assert len(grown.instance_ids) == 2 and len(reach.seen) == 2
    assert grown.security_group_id == first.security_group_id
    insts = instances(client, **{"tag:fleetcv:cluster": [name]})
    assert len(insts) == 3
    assert {i["InstanceType"] for i in insts.values()} == {"c5.2xlarge"}
    assert {i["InstanceLifecycle"] for i in insts.values()} == {"spot"}
    cfg = parse_written(path)
    assert [h.name for h in cfg.hosts][:2] == ["localhost", "box"]
    ec2_hosts = cfg.hosts[2:]
    assert len(ec2_hosts) == 3
    assert {(h.user, h.engines, h.workdir) for h in ec2_hosts} == {
        ("admin", 8, "/mnt/w")
    }


def test_grow_drops_entries_of_reclaimed_instances(aws, name, client, tmp_path):
    first = launch(aws, tmp_path, name, count=2, spot=True)
    # AWS reclaiming a spot instance looks, from here, like a termination.
    client.terminate_instances(InstanceIds=[first.instance_ids[0]])
    grown = fe.grow(
        1,
        cluster=name,
        region=REGION,
        endpoint_url=aws,
        hosts_file=tmp_path / "hosts.yml",
        wait_reachable=Reach(),
        poll=0.01,
        progress=False,
    )
    assert grown.pruned == [first.hosts[0]["name"]]
    data = yaml.safe_load((tmp_path / "hosts.yml").read_text())
    assert {h[fe.MARKER] for h in data["hosts"]} == {
        first.instance_ids[1],
        *grown.instance_ids,
    }


def test_grow_without_a_cluster(aws, name, tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"--cluster: no EC2 cluster named 'nope' in us-east-1. Fix: invoke ec2.up --cluster nope",
    ):
        fe.grow(
            1,
            cluster="nope",
            region=REGION,
            endpoint_url=aws,
            hosts_file=tmp_path / "hosts.yml",
            wait_reachable=Reach(),
        )


# --------------------------------------------------------------- status, prices


def test_status_rows_cost_and_a_lost_spot_host(aws, name, client, tmp_path):
    od = launch(aws, tmp_path, name, count=1)
    sp = launch(aws, tmp_path, name, count=2, spot=True, ssh_cidr=None)
    launch(aws, tmp_path, name + "x", count=1, hosts_file=tmp_path / "x.yml")
    client.terminate_instances(InstanceIds=[sp.instance_ids[1]])
    launched = instances(client)[od.instance_ids[0]]["LaunchTime"]
    now = launched + dt.timedelta(hours=2)

    rows = {
        r["instance_id"]: r
        for r in fe.status(name, region=REGION, endpoint_url=aws, now=now)
    }
    assert set(rows) == {*od.instance_ids, *sp.instance_ids}
    r = rows[od.instance_ids[0]]
    assert (r["state"], r["market"], r["type"]) == ("running", "on-demand", "c5.xlarge")
    assert r["price"] == fe.ON_DEMAND_USD_HOUR["c5.xlarge"]
    assert r["uptime_h"] == pytest.approx(2, abs=0.01)
    assert r["cost"] == pytest.approx(2 * 0.17, rel=0.01)
    assert r["name"] == od.hosts[0]["name"]
    s = rows[sp.instance_ids[0]]
    assert s["market"] == "spot" and s["price"] == pytest.approx(0.00001)
    lost = rows[sp.instance_ids[1]]
    assert lost["state"] in ("shutting-down", "terminated")
    assert lost["uptime_h"] is None and lost["cost"] is None

    text = fe.format_status(list(rows.values()))
    assert "on-demand" in text and "spot" in text and "terminated" in text
    assert "2 running" in text and "$0.34" in text


def test_prices(aws, name):
    p = fe.prices("c5.xlarge", region=REGION, endpoint_url=aws)
    assert p["instance_type"] == "c5.xlarge" and p["region"] == REGION
    assert p["n"] >= 1 and p["current"] == pytest.approx(0.00001)
    assert p["average"] == pytest.approx(0.00001) and p["max"] == pytest.approx(0.00001)
    assert all(z.startswith(REGION) for z in p["zones"])
    text = fe.format_prices(p)
    assert (
        ">>> Current price: $0.0000" in text
        and ">>> Max price:" in text
        and ">>> Average price:" in text
    )
    with pytest.raises(
        ConfigError, match=r"--instance-type: unknown instance type 'c5.xlarg'"
    ):
        fe.prices("c5.xlarg", region=REGION, endpoint_url=aws)


# ----------------------------------------------------------------------- down


def test_down_terminates_only_the_clusters_resources(aws, name, client, tmp_path):
    path = hosts_yml(tmp_path)
    # Someone's own instance and group, untagged, and another fleetcv cluster.
    mine = client.run_instances(
        ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    vpc = client.describe_vpcs()["Vpcs"][0]["VpcId"]
    my_sg = client.create_security_group(
        GroupName="mine", Description="mine", VpcId=vpc
    )["GroupId"]
    other = launch(
        aws, tmp_path, name + "x", count=1, hosts_file=tmp_path / "other.yml"
    )
    res = launch(aws, tmp_path, name, count=2, hosts_file=path)

    fetched = []
    out = fe.down(
        cluster=name,
        fetch=fetched.append,
        hosts_file=path,
        region=REGION,
        endpoint_url=aws,
        poll=0.01,
        progress=False,
    )

    assert sorted(out.terminated) == sorted(res.instance_ids)
    assert out.security_groups == [res.security_group_id] and out.fetched
    # fetch saw the hosts-file entries of the cluster's hosts, before termination.
    assert [sorted(h[fe.MARKER] for h in fetched[0])] == [sorted(res.instance_ids)]
    states = {i: d["State"]["Name"] for i, d in instances(client).items()}
    assert {states[i] for i in res.instance_ids} == {"terminated"}
    assert states[mine] == "running" and states[other.instance_ids[0]] == "running"
    groups = {g["GroupId"] for g in client.describe_security_groups()["SecurityGroups"]}
    assert res.security_group_id not in groups
    assert {my_sg, other.security_group_id} <= groups
    cfg = parse_written(path)
    assert [h.name for h in cfg.hosts] == ["localhost", "box"]
    assert cfg.controller.ip == "10.0.0.5"
    assert sorted(out.removed_hosts) == sorted(h["name"] for h in res.hosts)

    # Again: nothing left to do, and nothing else touched.
    again = fe.down(
        cluster=name,
        hosts_file=path,
        region=REGION,
        endpoint_url=aws,
        poll=0.01,
        progress=False,
    )
    assert again.terminated == [] and again.security_groups == []
    assert instances(client)[other.instance_ids[0]]["State"]["Name"] == "running"


def test_down_of_an_ec2_only_file_falls_back_to_this_machine(aws, name, tmp_path):
    launch(aws, tmp_path, name, count=1)
    fe.down(
        cluster=name,
        hosts_file=tmp_path / "hosts.yml",
        region=REGION,
        endpoint_url=aws,
        poll=0.01,
        progress=False,
    )
    cfg = parse_written(tmp_path / "hosts.yml")
    assert [h.name for h in cfg.hosts] == ["localhost"] and cfg.local_host


def test_a_failing_fetch_terminates_nothing(aws, name, client, tmp_path):
    res = launch(aws, tmp_path, name, count=1)

    def fetch(entries):
        raise fe.Ec2Error("fetching run directories failed")

    with pytest.raises(fe.Ec2Error, match="fetching run directories failed"):
        fe.down(
            cluster=name,
            fetch=fetch,
            hosts_file=tmp_path / "hosts.yml",
            region=REGION,
            endpoint_url=aws,
            progress=False,
        )
    assert instances(client)[res.instance_ids[0]]["State"]["Name"] == "running"


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("count", [0, -2, "3", 2.5, True])
def test_bad_count(aws, name, client, tmp_path, count):
    before = set(instances(client))
    with pytest.raises(
        ConfigError,
        match=r"^--count: expected a positive number of instances, got .*Fix: pass --count 1 or more",
    ):
        launch(aws, tmp_path, name, count=count)
    assert set(instances(client)) == before


def test_unknown_instance_type(aws, name, client, tmp_path):
    before = set(instances(client))
    with pytest.raises(
        ConfigError,
        match=r"^--instance-type: unknown instance type 'c5.xlarg' in us-east-1. Fix: did you mean c5.xlarge",
    ):
        launch(aws, tmp_path, name, instance_type="c5.xlarg")
    assert set(instances(client)) == before
    assert (
        client.describe_security_groups(
            Filters=[{"Name": "tag:fleetcv:cluster", "Values": [name]}]
        )["SecurityGroups"]
        == []
    )


def test_missing_credentials(aws, name, client, tmp_path, monkeypatch):
    before = set(instances(client))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(
        ConfigError,
        match=r"^AWS credentials: none found .*Fix: export AWS_ACCESS_KEY_ID",
    ):
        launch(aws, tmp_path, name)
    with pytest.raises(ConfigError, match=r"^AWS credentials: none found"):
        fe.status(region=REGION, endpoint_url=aws)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert set(instances(client)) == before


def test_unknown_profile(aws, name, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(ConfigError, match=r"^AWS_PROFILE: .*nope.*Fix: "):
        fe.status(cluster=name, region=REGION, endpoint_url=aws)


def test_region_typo(aws, name, client, tmp_path):
    before = set(instances(client))
    with pytest.raises(
        ConfigError,
        match=r"^--region: unknown region 'us-esat-1'. Fix: did you mean us-east-1",
    ):
        fe.up(
            1,
            "c5.xlarge",
            ami=AMI,
            region="us-esat-1",
            endpoint_url=aws,
            ssh_cidr=CIDR,
            hosts_file=tmp_path / "h.yml",
            wait_reachable=Reach(),
        )
    with pytest.raises(
        ConfigError,
        match=r"^--region: unknown region 'eu-wset-1'. Fix: did you mean eu-west-1",
    ):
        fe.status(region="eu-wset-1", endpoint_url=aws)
    assert set(instances(client)) == before


def test_no_region_at_all(aws, name, tmp_path):
    with pytest.raises(
        ConfigError, match=r"^--region: no region given.*Fix: pass --region us-east-1"
    ):
        fe.status(endpoint_url=aws)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"ssh_cidr": "0.0.0.0/0"},
            r"^--ssh-cidr: 0.0.0.0/0 opens SSH to the whole internet",
        ),
        ({"ssh_cidr": "::/0"}, r"^--ssh-cidr: ::/0 opens SSH to the whole internet"),
        (
            {"ssh_cidr": "128.0.0.0/1"},
            r"^--ssh-cidr: 128.0.0.0/1 opens SSH to 2,147,483,648 addresses, more "
            r"than a /16\. Fix: pass your own public address",
        ),
        ({"ssh_cidr": "2001:db8::/20"}, r"^--ssh-cidr: 2001:db8::/20 opens SSH to"),
        ({"ssh_cidr": "my-laptop"}, r"^--ssh-cidr: expected an address or network"),
        ({"ssh_cidr": None}, r"^--ssh-cidr: required for the new cluster 't\d+'"),
        (
            {"max_price": 0.1},
            r"^--max-price: 0.1 is a spot bid, but --spot is not given",
        ),
        (
            {"spot": True, "max_price": "-1"},
            r"^--max-price: expected a price in USD per hour > 0",
        ),
        ({"cluster": "my cluster"}, r"^--cluster: expected 1-40 letters"),
        (
            {"max_instances": 1},
            r"^--count: 2 more would make 2 instances .*over the limit of 1",
        ),
        (
            {"endpoint_url": "localhost:5000"},
            r"^--endpoint-url: expected http\(s\)://host\[:port\]",
        ),
    ],
)
def test_bad_input_creates_nothing(aws, name, client, tmp_path, kwargs, message):
    before = set(instances(client))
    with pytest.raises(ConfigError, match=message):
        launch(aws, tmp_path, kwargs.pop("cluster", name), count=2, **kwargs)
    assert set(instances(client)) == before
    assert not (tmp_path / "hosts.yml").exists()


def test_an_invalid_hosts_file_stops_up_before_launching(aws, name, client, tmp_path):
    before = set(instances(client))
    path = hosts_yml(tmp_path, extra_hosts=[{"name": "box", "address": "x@10.0.0.12"}])
    with pytest.raises(
        ConfigError, match=r"hosts\[2\].name: duplicate host name 'box'"
    ):
        launch(aws, tmp_path, name, hosts_file=path)
    assert set(instances(client)) == before


# -------------------------------------------------------------- invoke tasks


def test_tasks_up_status_prices_down(aws, name, client, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fe.ENDPOINT_ENV, aws)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("FLEETCV_HOSTS", str(tmp_path / "hosts.yml"))
    c = Context()
    tasks.ec2_up(
        c,
        count="2",
        instance_type="c5.xlarge",
        spot=True,
        max_price="0.2",
        ami=AMI,
        ssh_cidr=CIDR,
        cluster=name,
        no_ssh_wait=True,
    )
    out = capsys.readouterr().out
    assert (
        f"wrote {tmp_path / 'hosts.yml'}" in out
        and "billed until: invoke ec2.down" in out
    )
    assert "warning: no --key-name" in out
    tasks.ec2_grow(c, count="1", cluster=name, no_ssh_wait=True)
    assert "invoke cluster.grow" in capsys.readouterr().out
    tasks.ec2_status(c, cluster=name)
    out = capsys.readouterr().out
    assert out.count(" running ") == 3 and "spot" in out
    tasks.ec2_prices(c, instance_type="c5.xlarge")
    assert ">>> Current price" in capsys.readouterr().out
    tasks.ec2_down(c, cluster=name, no_fetch=True)
    out = capsys.readouterr().out
    assert out.count(": terminated") == 3 and "security group deleted" in out
    mine = instances(client, **{"tag:fleetcv:cluster": [name]})
    assert len(mine) == 3
    assert {i["State"]["Name"] for i in mine.values()} == {"terminated"}


@pytest.mark.parametrize(
    ("task", "kwargs", "code", "message"),
    [
        (
            tasks.ec2_up,
            {"count": "0", "instance_type": "c5.xlarge"},
            2,
            "error: --count: expected a positive number",
        ),
        (
            tasks.ec2_up,
            {"count": "two", "instance_type": "c5.xlarge"},
            2,
            "error: --count: expected a whole number, got 'two'",
        ),
        (tasks.ec2_up, {"count": "1"}, 2, "error: --instance-type: required"),
        (
            tasks.ec2_grow,
            {"count": "1"},
            2,
            r"error: --cluster: no EC2 cluster named 't\d+'",
        ),
        (
            tasks.ec2_prices,
            {"instance_type": "c5.xlarge", "region": "us-esat-1"},
            2,
            "error: --region: unknown region",
        ),
    ],
)
def test_task_errors_exit_with_one_line(
    aws, name, tmp_path, monkeypatch, task, kwargs, code, message
):
    monkeypatch.setenv(fe.ENDPOINT_ENV, aws)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.chdir(tmp_path)
    if task is not tasks.ec2_prices:
        kwargs = {**kwargs, "cluster": name}
    with pytest.raises(Exit) as exc:
        task(Context(), **kwargs)
    assert exc.value.code == code
    assert re.match(message, exc.value.message) and "\n" not in exc.value.message


def test_rsync_fetch_command():
    entry = {
        "name": "fleetcv-abcd1234",
        "address": "ubuntu@54.1.2.3",
        "workdir": "/mnt/fleetcv",
        "ssh_key": "~/.ssh/k.pem",
        fe.MARKER: "i-0abcd1234",
    }
    cmd = ssh.rsync_fetch_command(entry, "{workdir}/runs", "runs/ec2-fleetcv")
    assert cmd[:3] == ["rsync", "-az", "--protect-args"]
    assert cmd[-2:] == [
        "ubuntu@54.1.2.3:/mnt/fleetcv/runs/",
        "runs/ec2-fleetcv/fleetcv-abcd1234/",
    ]
    assert (
        "StrictHostKeyChecking=accept-new" in cmd[4]
        and "-i" in cmd[4]
        and "k.pem" in cmd[4]
    )


def test_the_default_cluster_name_is_the_users_own():
    import getpass

    from fleetcv.ec2.settings import DEFAULT_CLUSTER, check_cluster

    assert DEFAULT_CLUSTER == f"fleetcv-{getpass.getuser()}"
    assert check_cluster(DEFAULT_CLUSTER) == DEFAULT_CLUSTER
