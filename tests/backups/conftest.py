"""The rig (real PostgreSQL, moto's S3 server) shared by the runner's tests in this folder."""

from tests.backups.rig import rig

__all__ = ["rig"]
