"""The audit_x Rails app: a migration job, the web role and the worker roles.

Order on every `pulumi up` that changes the image: the migration job runs `bin/rails db:migrate`
to completion; only when it exits 0 are web and workers (re)created from the new image. A failed
migration fails the update and leaves the running containers as they were.

Every role gets the same wiring (database, Redis, Kafka, InfluxDB, SECRET_KEY_BASE, JSON logs
to stdout, Sentry when configured), so a job behaves the same in a worker as in the console.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    ContainerSpec,
    HealthCheck,
    long_running_container,
    on_network,
    one_shot_container,
    pinned_image,
    require_success,
)
from components.lib.context import LABEL_PREFIX, EnvironmentContext
from components.settings import AppSettings

LIVE_PATH = "/live"
READY_PATH = "/ready"
HEALTH_PATH = "/health"
MIGRATION_COMMAND = ["bin/rails", "db:migrate"]
HEARTBEAT_FILE = "/tmp/audit-x-heartbeat"
# A worker is healthy while it keeps touching its heartbeat file (see docs/app-contract.md).
DEFAULT_WORKER_HEALTH = f'test -n "$(find {HEARTBEAT_FILE} -mmin -1 2>/dev/null)"'


def web_health_command(port: int) -> str:
    return f"curl -fsS --max-time 4 http://127.0.0.1:{port}{LIVE_PATH} >/dev/null"


def web_slot(index: int) -> str:
    """The stable name the edge reaches a web replica by, whichever release runs in it."""
    return f"web-{index}"


def release_suffix(reference: str, rotation: Mapping[str, str] | None = None) -> str:
    """Part of every web and worker container's name: a new image, or a rotated secret (new env),
    means new containers, created (and healthy) before the old ones are removed."""
    markers = ",".join(f"{name}={marker}" for name, marker in sorted((rotation or {}).items()))
    return hashlib.sha256(f"{reference}|{markers}".encode()).hexdigest()[:8]


def image_tag(reference: str) -> str:
    """The release name Sentry and the labels use: the tag, or the digest when pinned by digest."""
    if "@" in reference:
        return reference.rsplit("@", 1)[1]
    return reference.rsplit(":", 1)[1]


class App(pulumi.ComponentResource):
    image: docker.RemoteImage
    migration: docker.Container
    web: list[docker.Container]
    workers: dict[str, list[docker.Container]]

    def __init__(
        self,
        name: str,
        settings: AppSettings,
        *,
        ctx: EnvironmentContext,
        env: Mapping[str, pulumi.Input[str]],
        data_network: docker.Network,
        app_network: docker.Network,
        depends_on: list[pulumi.Resource],
        backup_before_migration: pulumi.Output[str] | None = None,
        rotation: Mapping[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:app:App", name, None, opts)
        self.image = pinned_image(ctx.name("app", "image"), settings.image, self)
        release = image_tag(settings.image)
        common_env = {
            **env,
            "RAILS_ENV": settings.rails_env,
            "RACK_ENV": settings.rails_env,
            "RAILS_MAX_THREADS": str(settings.rails_max_threads),
            "RAILS_LOG_TO_STDOUT": "true",
            "RAILS_LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
            "APP_RELEASE": release,
        }
        if "SENTRY_DSN" in env:
            common_env |= {"SENTRY_ENVIRONMENT": ctx.environment, "SENTRY_RELEASE": release}

        def spec(
            role: str,
            memory_mb: int,
            health: HealthCheck | None,
            *,
            command: list[str] | None = None,
            extra_env: Mapping[str, str] | None = None,
            extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
            aliases: tuple[str, ...] = (),
            wait_timeout_seconds: int = 120,
            stop_grace_seconds: int = 30,
        ) -> ContainerSpec:
            return ContainerSpec(
                service="app",
                role=role,
                image=self.image.image_id,
                memory_mb=memory_mb,
                networks=[on_network(data_network), on_network(app_network, role, *aliases)],
                env={**common_env, "APP_ROLE": role, **(extra_env or {})},
                command=command,
                healthcheck=health,
                extra_labels=extra_labels or {},
                wait_timeout_seconds=wait_timeout_seconds,
                stop_grace_seconds=stop_grace_seconds,
            )

        self.migration = one_shot_container(
            ctx,
            ctx.name("migrate"),
            spec(
                "migrate",
                settings.migration_memory_limit_mb,
                None,
                command=MIGRATION_COMMAND,
                # Resolves only once the pre-migration backup succeeded (where config asks for
                # one): a failed backup means no migration, and so no rollout.
                extra_labels=(
                    {f"{LABEL_PREFIX}.backed-up-before": backup_before_migration}
                    if backup_before_migration is not None
                    else None
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )
        # Resolves only once the migration exited 0; web and workers take it as a label, so
        # none of them is (re)created after a failed migration.
        migrated = require_success(ctx.name("migrate"), self.migration.exit_code)
        after_migration = pulumi.ResourceOptions(parent=self, depends_on=[self.migration])
        migrated_label = {f"{LABEL_PREFIX}.migrated-release": migrated.apply(lambda _: release)}

        web = settings.web
        suffix = release_suffix(settings.image, rotation)
        self.web = [
            long_running_container(
                ctx,
                ctx.name("web", str(index)),
                spec(
                    "web",
                    web.memory_limit_mb,
                    HealthCheck(web_health_command(web.port), start_period="60s"),
                    extra_env={"PORT": str(web.port)},
                    extra_labels={
                        **migrated_label,
                        f"{LABEL_PREFIX}.port": str(web.port),
                        f"{LABEL_PREFIX}.probe.live": LIVE_PATH,
                        f"{LABEL_PREFIX}.probe.ready": READY_PATH,
                        f"{LABEL_PREFIX}.probe.health": HEALTH_PATH,
                    },
                    aliases=(web_slot(index),),
                    wait_timeout_seconds=web.health_timeout_seconds,
                    # SIGTERM, then this long to finish requests in flight before SIGKILL.
                    stop_grace_seconds=web.drain_seconds,
                ),
                after_migration,
                container_name=ctx.name("web", str(index), suffix),
            )
            for index in range(web.replicas)
        ]
        self.workers = {
            worker.name: [
                long_running_container(
                    ctx,
                    ctx.name("worker", worker.name, str(index)),
                    spec(
                        worker.name,
                        worker.memory_limit_mb,
                        HealthCheck(worker.health_command or DEFAULT_WORKER_HEALTH, start_period="120s"),
                        command=worker.command,
                        extra_env={"HEARTBEAT_FILE": HEARTBEAT_FILE},
                        extra_labels=migrated_label,
                        # Workers finish the job in hand on SIGTERM; give them the time to.
                        stop_grace_seconds=60,
                    ),
                    after_migration,
                    container_name=ctx.name("worker", worker.name, str(index), suffix),
                )
                for index in range(worker.replicas)
            ]
            for worker in settings.workers
        }
        self.register_outputs(
            {
                "migration": self.migration.name,
                "web": [c.name for c in self.web],
                "workers": {name: [c.name for c in cs] for name, cs in self.workers.items()},
            }
        )
