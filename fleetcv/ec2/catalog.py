"""What EC2 sells: instance types, the default Ubuntu image, approximate prices.

Runs on the laptop; talks only to the EC2 API. The instance type check (with
close matches for a typo) and the AMI lookup that a launch needs, and the
on-demand list prices that `status` estimates costs with.
"""

from __future__ import annotations

from fleetcv.ec2.api import Ec2, Ec2Error, call, pages
from fleetcv.ec2.typos import suggest
from fleetcv.errors import ConfigError

#: Default AMI: the newest Ubuntu 24.04 LTS published by Canonical.
UBUNTU_OWNER = "099720109477"
UBUNTU_NAME = "ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-{arch}-server-*"
#: EC2 architecture names -> the names in Ubuntu's AMI names.
UBUNTU_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
#: Spot price history products that describe a Linux instance in a VPC.
LINUX_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
#: Approximate on-demand list prices (USD/hour, Linux, us-east-1) for the cost
#: estimate of `status`. EC2 has no price API of its own (the Pricing API is
#: another service, with other permissions), other regions differ by a few
#: percent, and prices change: the estimate is a guide, the bill is the truth.
ON_DEMAND_USD_HOUR = {
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "t3.xlarge": 0.1664,
    "t3.2xlarge": 0.3328,
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "m5.4xlarge": 0.768,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "m6i.4xlarge": 0.768,
    "c5.large": 0.085,
    "c5.xlarge": 0.17,
    "c5.2xlarge": 0.34,
    "c5.4xlarge": 0.68,
    "c5.9xlarge": 1.53,
    "c6i.large": 0.085,
    "c6i.xlarge": 0.17,
    "c6i.2xlarge": 0.34,
    "c6i.4xlarge": 0.68,
    "c6i.8xlarge": 1.36,
    "r5.large": 0.126,
    "r5.xlarge": 0.252,
    "r5.2xlarge": 0.504,
}


def instance_type_info(ec2: Ec2, instance_type: str) -> dict:
    """The vCPU count and architectures of an instance type (DescribeInstanceTypes).

    Raises
    ------
    ConfigError
        If the region does not offer the type (a typo, mostly), with close
        matches among the common families.
    """
    if not isinstance(instance_type, str) or not instance_type:
        raise ConfigError(
            f"--instance-type: expected a type like c5.xlarge, got {instance_type!r}. "
            "Fix: pass --instance-type c5.xlarge"
        )
    try:
        info = call(ec2, "describe_instance_types", InstanceTypes=[instance_type])
    except (ConfigError, Ec2Error) as exc:
        # Some endpoints report an unknown type as a plain InvalidParameterValue.
        if getattr(exc, "code", None) not in (
            "InvalidInstanceType",
            "InvalidParameterValue",
        ):
            raise
        info = {"InstanceTypes": []}
    types = info.get("InstanceTypes", [])
    if not types:
        close = suggest(instance_type, ON_DEMAND_USD_HOUR)
        hint = f"did you mean {' or '.join(close)}?" if close else "check the spelling"
        raise ConfigError(
            f"--instance-type: unknown instance type {instance_type!r} in {ec2.region}. "
            f"Fix: {hint} (`aws ec2 describe-instance-types` lists them)"
        )
    t = types[0]
    return {
        "vcpus": int(t["VCpuInfo"]["DefaultVCpus"]),
        "architectures": list(
            t.get("ProcessorInfo", {}).get("SupportedArchitectures", ["x86_64"])
        ),
    }


def find_ami(ec2: Ec2, architectures: list[str]) -> str:
    """The newest Canonical Ubuntu 24.04 AMI for one of the given architectures."""
    for arch in architectures:
        if arch not in UBUNTU_ARCH:
            continue
        images = list(
            pages(
                ec2,
                "describe_images",
                "Images",
                Owners=[UBUNTU_OWNER],
                Filters=[
                    {
                        "Name": "name",
                        "Values": [UBUNTU_NAME.format(arch=UBUNTU_ARCH[arch])],
                    },
                    {"Name": "state", "Values": ["available"]},
                    {"Name": "architecture", "Values": [arch]},
                ],
            )
        )
        if images:
            return max(images, key=lambda i: i.get("CreationDate", ""))["ImageId"]
    raise ConfigError(
        f"--ami: no Ubuntu 24.04 image for {'/'.join(architectures)} found in "
        f"{ec2.region}. Fix: pass --ami ami-... (an Ubuntu image with python3)"
    )
