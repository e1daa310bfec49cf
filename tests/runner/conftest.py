"""The rig (real PostgreSQL, moto's S3 server) shared by the runner's tests in this folder."""

from harness.runner_rig import rig

__all__ = ["rig"]
