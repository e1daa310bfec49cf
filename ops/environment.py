"""An environment as the operator commands see it: its stack's settings, its Docker host, and its
containers found by label under the names operators use (`web`, `sidekiq`, `backup`, `postgres`,
`migrate`, `redis-password`).

The names are the keys of the stack's `containers` and `jobs` outputs
(tests/ops/test_operator_commands.py checks that they agree), plus each worker role of the
stack's config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components.lib.tokens import label
from components.settings import Settings, load_settings
from harness.mock_engine import load_stack_config
from ops.docker_host import Container, DockerHost, HostError

# The services the program runs beside the app, each one labelled io.audit-x.service=<name>.
PLATFORM_SERVICES = (
    "postgres",
    "redis",
    "redpanda",
    "influxdb",
    "grafana",
    "loki",
    "alloy",
    "collector",
    "docker-api",
    "backup",
    "edge",
)
# The app's own roles that every stack has (io.audit-x.service=app, io.audit-x.role=<name>).
APP_ROLES = ("web", "migrate")
# Every long-running container of the app at once (web, canary and workers): what writes.
APP = "app"
# The one-shot jobs by the names of the stack's `jobs` output, and the labels (service, role) of
# each one's container (the migration is an app role above).
JOBS = {
    "postgres-password": ("postgres", "password"),
    "postgres-logins": ("postgres", "logins"),
    "pgbackrest-stanza": ("postgres", "pgbackrest"),
    "redis-password": ("redis", "password"),
    "redis-password-retire": ("redis", "password-retire"),
    "redpanda-cluster-properties": ("redpanda", "lag-metrics"),
    "grafana-admin-password": ("grafana", "admin-password"),
    "edge-routes": ("edge", "routes"),
    "pre-migration-backup": ("backup", "pre-migrate"),
}


class UnknownServiceError(ValueError):
    """A service name that the environment does not run (a usage error)."""


@dataclass(frozen=True)
class Environment:
    stack: str
    settings: Settings
    host: DockerHost

    @classmethod
    def of(cls, stack: str, *, docker_host: str | None = None) -> Environment:
        """The stack's environment on its `dockerHost`, or on `docker_host` (a host being rebuilt,
        a rig) when given."""
        settings = load_settings(load_stack_config(stack))
        return cls(stack, settings, DockerHost(docker_host or settings.docker_host))

    @property
    def name(self) -> str:
        return self.settings.environment

    @property
    def services(self) -> tuple[str, ...]:
        workers = (worker.name for worker in self.settings.app.workers)
        return (*PLATFORM_SERVICES, APP, *APP_ROLES, *workers, *JOBS)

    def selector(self, service: str) -> dict[str, str]:
        """The labels of a service's containers: a long-running service's, or an app role's."""
        if service not in self.services:
            raise UnknownServiceError(
                f"service: {service!r} is not one of {self.stack}'s services; "
                f"expected one of {', '.join(self.services)}"
            )
        environment = {label("environment"): self.name}
        if service in JOBS:
            job_service, role = JOBS[service]
            return environment | {label("service"): job_service, label("role"): role, label("lifecycle"): "job"}
        if service == APP:
            return environment | {label("service"): "app", label("lifecycle"): "service"}
        if service in PLATFORM_SERVICES:
            return environment | {label("service"): service, label("lifecycle"): "service"}
        return environment | {label("service"): "app", label("role"): service}

    def containers(self, service: str | None = None, *, running: bool = False) -> list[Container]:
        """The environment's containers (one service's when named), with their state and health."""
        labels = self.selector(service) if service else {label("environment"): self.name}
        return self.host.inspect(self.host.containers(labels, running=running))

    def is_job(self, service: str) -> bool:
        return service in JOBS or service == "migrate"

    def one_running(self, service: str) -> Container:
        """A running container of `service` (the first by name: web-0 before web-1), for exec."""
        running = self.containers(service, running=True)
        if not running:
            raise HostError(f"no running container of {service} in {self.name} on {self.host.host}")
        return running[0]


def names(containers: Sequence[Container]) -> list[str]:
    return [container.name for container in containers]
