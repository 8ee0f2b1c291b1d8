"""The EC2 API connection: one boto3 client, one error mapping, paging.

Runs on the laptop; this is the only module that talks to boto3. Every EC2
call of fleetcv.ec2 goes through `call` (or `pages`), which turns boto3's
failures into one-line errors: what the user can fix (credentials, region,
endpoint, a rejected instance type, AMI, key or subnet) as
`fleetcv.errors.ConfigError` (exit 2), failures on the EC2 side (quota,
capacity, anything else) as `Ec2Error` (exit 1).

Credentials come from boto3's standard chain only (environment, shared
credentials/config files and profiles, instance role); nothing here reads or
writes a secret. ``endpoint_url`` (or ``$FLEETCV_EC2_ENDPOINT``) points it at
any EC2-compatible endpoint; the tests use moto's server on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetcv.ec2.typos import suggest
from fleetcv.errors import ConfigError, HostError

#: Environment variable naming an EC2-compatible endpoint (same as --endpoint-url).
ENDPOINT_ENV = "FLEETCV_EC2_ENDPOINT"
#: Error codes that mean "your credentials are wrong", not "your input is wrong".
_AUTH_CODES = {
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "ExpiredToken",
}
#: Error codes of capacity and quota limits: nothing wrong with the input.
_CAPACITY_CODES = {
    "InsufficientInstanceCapacity",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
}
#: EC2 error code prefixes that name a flag's value, and how to find that value
#: in a call's arguments.
_FLAG_OF_CODE = {
    "InvalidInstanceType": ("--instance-type", "InstanceType"),
    "InvalidAMIID": ("--ami", "ImageId"),
    "InvalidKeyPair": ("--key-name", "KeyName"),
    "InvalidSubnetID": ("--subnet", "SubnetId"),
    "InvalidSubnet": ("--subnet", "SubnetId"),
}


class Ec2Error(HostError):
    """EC2 refused or failed an operation (capacity, quota, timeout, API error).

    ``code`` is EC2's error code when EC2 gave one.
    """

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


@dataclass
class Ec2:
    """A connected EC2 client and the region and endpoint it talks to."""

    client: Any
    region: str
    endpoint_url: str | None


def connect(region: str | None, endpoint_url: str | None) -> Ec2:
    """An EC2 client from the standard AWS chain, with region and credentials checked.

    Parameters
    ----------
    region : str, optional
        The region; default: the AWS configuration's.
    endpoint_url : str, optional
        An EC2-compatible endpoint; default ``$FLEETCV_EC2_ENDPOINT``, else AWS.

    Returns
    -------
    Ec2

    Raises
    ------
    ConfigError
        On a malformed endpoint, an unknown profile or region, or no
        credentials; nothing has been sent to EC2 then.
    """
    # botocore (boto3's core) is slow to import: imported here, not at the top,
    # so that only the commands that talk to EC2 pay for it.
    from botocore.config import Config

    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    if endpoint_url and not re.match(r"https?://[^/\s]+", endpoint_url):
        raise ConfigError(
            f"--endpoint-url: expected http(s)://host[:port], got {endpoint_url!r}. "
            f"Fix: pass e.g. --endpoint-url http://127.0.0.1:5000, or unset {ENDPOINT_ENV}"
        )
    session, region, credentials = _session(region)
    if not region:
        raise ConfigError(
            "--region: no region given and none in the AWS configuration. "
            "Fix: pass --region us-east-1 (or set AWS_DEFAULT_REGION / region in ~/.aws/config)"
        )
    if credentials is None:
        raise no_credentials()
    client = session.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=10, read_timeout=60, retries={"mode": "standard"}
        ),
    )
    _check_region(session, region, endpoint_url)
    return Ec2(client, region, endpoint_url)


def _session(region: str | None) -> tuple[Any, str | None, Any]:
    """A boto3 session, the region to use and the credentials it found (or None)."""
    # boto3 is slow to import: only the commands that talk to EC2 pay for it.
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    # botocore reads the profile lazily: any of these three may find it missing.
    try:
        session = boto3.Session(botocore_session=_botocore_session())
        region = region or session.region_name
        # Checked before any call, so a missing key fails before anything is created.
        credentials = session.get_credentials() if region else None
    except ProfileNotFound as exc:
        raise ConfigError(
            f"AWS_PROFILE: {exc}. Fix: use a profile of ~/.aws/config "
            "(`aws configure list-profiles`), or unset AWS_PROFILE"
        ) from None
    except BotoCoreError as exc:
        # An expired SSO token, a broken credential_process, ...
        raise ConfigError(
            f"AWS credentials: {exc}. Fix: refresh them (e.g. `aws sso login`) or "
            "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    return session, region, credentials


_DATA_LOADER = None


def _botocore_session():
    """A fresh botocore session (credentials and config read anew) sharing one data loader.

    Loading EC2's service model takes a good fraction of a second; sharing the
    loader (which caches it) keeps repeated calls in one process fast.
    """
    # Slow to import, like boto3: only the commands that talk to EC2 pay for it.
    import botocore.session

    global _DATA_LOADER
    session = botocore.session.get_session()
    if _DATA_LOADER is None:
        _DATA_LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _DATA_LOADER)
    return session


def no_credentials() -> ConfigError:
    """The error for "no AWS credentials anywhere", with the ways to provide them."""
    return ConfigError(
        "AWS credentials: none found in the environment, ~/.aws/credentials, "
        "~/.aws/config or an instance role. Fix: export AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE=NAME after `aws configure`"
    )


def _check_region(session, region: str, endpoint_url: str | None) -> None:
    """Reject a region that neither botocore nor the endpoint knows (a typo, mostly)."""
    known: set[str] = set()
    for partition in session.get_available_partitions():
        known.update(session.get_available_regions("ec2", partition_name=partition))
    if region in known:
        return
    if endpoint_url:
        # A private EC2-compatible cloud may name its regions as it likes.
        names = _endpoint_regions(session, region, endpoint_url)
        if region in names:
            return
        known |= names
    close = suggest(region, known)
    hint = f"did you mean {' or '.join(close)}?" if close else "check the spelling"
    raise ConfigError(
        f"--region: unknown region {region!r}. Fix: {hint} "
        f"(`aws ec2 describe-regions` lists them)"
    )


def _endpoint_regions(session, region: str, endpoint_url: str) -> set[str]:
    """The regions an EC2-compatible endpoint says it has (none if it cannot say)."""
    # Here, not at the top, for botocore's import cost (see `connect`).
    from botocore.config import Config

    probe = session.client(
        "ec2",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 1}, connect_timeout=10),
    )
    try:
        return {r["RegionName"] for r in probe.describe_regions()["Regions"]}
    except Exception:  # noqa: BLE001 - an endpoint that cannot answer for it does not know it
        return set()


def call(ec2: Ec2, op: str, **kwargs) -> dict:
    """Call one EC2 operation, turning its failures into one-line errors.

    Parameters
    ----------
    ec2 : Ec2
        The connection.
    op : str
        The boto3 method name, e.g. ``"describe_instances"``.
    **kwargs
        The operation's arguments.

    Returns
    -------
    dict
        EC2's response.

    Raises
    ------
    ConfigError
        When the user can fix it (credentials, endpoint, a rejected value).
    Ec2Error
        On any other EC2 failure; ``code`` is EC2's error code.
    """
    # Here, not at the top, for botocore's import cost (see `connect`).
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        return getattr(ec2.client, op)(**kwargs)
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise no_credentials() from exc
    except EndpointConnectionError as exc:
        where = f"--endpoint-url {ec2.endpoint_url}" if ec2.endpoint_url else "--region"
        raise ConfigError(
            f"{where}: cannot reach EC2 ({exc}). Fix: check the network, the region "
            f"{ec2.region!r} and the endpoint"
        ) from exc
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", "?"), err.get("Message", str(exc))
        error = _client_error(ec2, op, code, msg, kwargs)
        # Callers that expect a code (a duplicate rule, a group still in use)
        # test it, never the message text.
        error.code = code  # type: ignore[attr-defined]
        raise error from exc


def _client_error(ec2: Ec2, op: str, code: str, msg: str, kwargs: dict) -> Exception:
    """The fleetcv error for an EC2 error code."""
    if code in _AUTH_CODES:
        return ConfigError(
            f"AWS credentials: EC2 refused them ({code}: {msg}). Fix: check "
            "AWS_ACCESS_KEY_ID/AWS_PROFILE and the IAM permissions for EC2"
        )
    if code == "OptInRequired":
        return ConfigError(
            f"--region: {ec2.region} is not enabled for this account ({msg}). "
            "Fix: enable it in the AWS console or use another region"
        )
    for prefix, (flag, key) in _FLAG_OF_CODE.items():
        if code == prefix or code.startswith(prefix + "."):
            # The same value goes as X to RunInstances and as [X] to DescribeXs.
            value = kwargs.get(key) or (kwargs.get(key + "s") or [None])[0]
            return ConfigError(
                f"{flag}: EC2 rejected {value!r} in {ec2.region} ({code}: {msg}). "
                f"Fix: use a value that exists in {ec2.region}"
            )
    if code in _CAPACITY_CODES:
        fix = (
            "raise --max-price or drop it (default cap: the on-demand price)"
            if code == "SpotMaxPriceTooLow"
            else "try another instance type, zone (--subnet) or region, fewer "
            "instances, or ask AWS for a higher quota"
        )
        return Ec2Error(f"EC2 {op}: {code}: {msg}. Fix: {fix}", code)
    return Ec2Error(f"EC2 {op} failed in {ec2.region}: {code}: {msg}", code)


def pages(ec2: Ec2, op: str, key: str, **kwargs) -> Iterable[dict]:
    """Every item of a paginated EC2 list, with `call`'s error handling.

    Parameters
    ----------
    ec2 : Ec2
        The connection.
    op : str
        The boto3 method name of a list operation.
    key : str
        The response key that holds the items, e.g. ``"Reservations"``.
    **kwargs
        The operation's arguments.

    Yields
    ------
    dict
        One item at a time, across all pages.
    """
    token = None
    while True:
        page = call(ec2, op, **kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return
