"""Transient EC2 clusters on boto3: launch, grow, status, prices, tear down.

Runs on the laptop; talks only to the EC2 API. Everything after a launch
goes over SSH like any other host.
"""
