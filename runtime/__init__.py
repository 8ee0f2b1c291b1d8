"""fleetcv's runtime: what runs on the engines, plus the driver that feeds them.

Importable without Fabric or Invoke; holds no SSH.
"""
