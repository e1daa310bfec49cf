"""What every component of one environment shares: its names, labels, tags and protection.

Written once here so that naming, labelling and the protection of stateful resources read the
same everywhere, and so that nothing has to look at the stack's name.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.lib.tokens import LABEL_PREFIX
from components.settings import PROJECT, LogRotationSettings, Settings


@dataclass(frozen=True)
class EnvironmentContext:
    environment: str
    protect_stateful: bool
    log_rotation: LogRotationSettings
    # Part of every one-shot job's revision: a new marker runs every job again (after a failure).
    rerun_jobs: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> EnvironmentContext:
        return cls(
            environment=settings.environment,
            protect_stateful=settings.protect_stateful_resources,
            log_rotation=settings.log_rotation,
            rerun_jobs=settings.deploy.rerun_jobs,
        )

    def name(self, *parts: str) -> str:
        """`name("postgres", "data")` -> `audit-x-staging-postgres-data`: unique per project and environment."""
        return "-".join([PROJECT, self.environment, *parts])

    def secret_name(self, name: str) -> str:
        """Where a secret lives in AWS Secrets Manager: `audit-x/staging/postgres-password`."""
        return f"{PROJECT}/{self.environment}/{name}"

    def labels(self, service: str, role: str | None = None) -> dict[str, str]:
        """Docker labels: who owns a container or volume, for `docker ps --filter` and the log shipper."""
        return {
            f"{LABEL_PREFIX}.project": PROJECT,
            f"{LABEL_PREFIX}.environment": self.environment,
            f"{LABEL_PREFIX}.service": service,
            f"{LABEL_PREFIX}.role": role or service,
            f"{LABEL_PREFIX}.managed-by": "pulumi",
        }

    def tags(self, **extra: str) -> dict[str, str]:
        """AWS tags every resource carries, so cost and ownership can be read off any of them."""
        return {"Project": PROJECT, "Environment": self.environment, "ManagedBy": "pulumi", **extra}

    def stateful(self, parent: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for data that must outlive a mistake: protected, and kept if ever deleted from state."""
        return pulumi.ResourceOptions(
            parent=parent,
            protect=self.protect_stateful,
            retain_on_delete=self.protect_stateful,
        )
