"""The audit_x Rails app: a migration job, the web role and the worker roles.

Order on every `pulumi up` that changes the image: a fresh backup (where config asks for one),
then the migration job runs `bin/rails db:migrate` to completion; only when it exits 0 are the
new web and worker containers created, each waited on until healthy, and the old ones are
removed at the end of the update. A failed backup or migration fails the update and leaves the
running containers as they were.

Every role gets the same wiring (database, Redis, Kafka, InfluxDB, SECRET_KEY_BASE, JSON logs
to stdout, Sentry when configured), so a job behaves the same in a worker as in the console.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    SECRETS_DIR,
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    on_network,
    one_shot_container,
    pinned_image,
    revision,
    succeeded,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped
from components.lib.tokens import LABEL_PREFIX
from components.settings import AppSettings
from components.settings.types import image_tag

LIVE_PATH = "/live"
READY_PATH = "/ready"
HEALTH_PATH = "/health"
MIGRATION_COMMAND = ["bin/rails", "db:migrate"]
LAUNCHER = "/run/audit-x/launch"
LAUNCHER_SCRIPT = read_shipped(__file__, "app_launcher.sh")
# The connection URLs the launcher completes with a password: URL variable -> password variable.
URL_PASSWORDS = {"DATABASE_URL": "DATABASE_PASSWORD", "REDIS_URL": "REDIS_PASSWORD"}
HEARTBEAT_FILE = "/tmp/audit-x-heartbeat"
# A worker is healthy while it keeps touching its heartbeat file (see docs/app-contract.md).
DEFAULT_WORKER_HEALTH = f'test -n "$(find {HEARTBEAT_FILE} -mmin -1 2>/dev/null)"'


def web_health_command(port: int) -> str:
    return f"curl -fsS --max-time 4 http://127.0.0.1:{port}{LIVE_PATH} >/dev/null"


def web_slot(index: int) -> str:
    """The stable name the edge reaches a web replica by, whichever release runs in it."""
    return f"web-{index}"


def canary_slot(index: int) -> str:
    return f"web-canary-{index}"


class App(pulumi.ComponentResource):
    image: docker.RemoteImage
    canary_image: docker.RemoteImage | None
    migration: docker.Container
    pre_migration_backup: docker.Container | None
    web: list[docker.Container]
    canary: list[docker.Container]
    workers: dict[str, list[docker.Container]]

    def __init__(
        self,
        name: str,
        settings: AppSettings,
        *,
        ctx: EnvironmentContext,
        env: Mapping[str, pulumi.Input[str]],
        secrets: Mapping[str, pulumi.Output[str]],
        data_network: docker.Network,
        app_network: docker.Network,
        depends_on: list[pulumi.Input[pulumi.Resource]],
        backup_before_migration: Callable[[pulumi.Output[str]], docker.Container | None] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:app:App", name, None, opts)
        self.image = pinned_image(ctx.name("app", "image"), settings.image, self)
        canary = settings.canary
        self.canary_image = pinned_image(ctx.name("app", "canary", "image"), canary.image, self) if canary else None
        common_env = {
            **env,
            "RAILS_ENV": settings.rails_env,
            "RACK_ENV": settings.rails_env,
            "RAILS_MAX_THREADS": str(settings.rails_max_threads),
            "RAILS_LOG_TO_STDOUT": "true",
            "RAILS_LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
        }

        def release_env(image: str) -> dict[str, str]:
            # The release name Sentry and APP_RELEASE use: the tag, or the digest when pinned by digest.
            release = image_tag(image)
            sentry = (
                {"SENTRY_ENVIRONMENT": ctx.environment, "SENTRY_RELEASE": release} if "SENTRY_DSN" in secrets else {}
            )
            return {"APP_RELEASE": release, **sentry}

        # Secrets as files, readable by the app's user alone; the environment names the files.
        secret_files = {name: f"{SECRETS_DIR}/{name.lower().replace('_', '-')}" for name in sorted(secrets)}
        common_env |= {f"{name}_FILE": path for name, path in secret_files.items()}
        common_env |= {
            "AUDIT_X_SECRETS": " ".join(secret_files),
            "AUDIT_X_URL_PASSWORDS": " ".join(f"{url}={password}" for url, password in URL_PASSWORDS.items()),
        }
        files: list[SecretFile | ConfigFile] = [
            ConfigFile(LAUNCHER, LAUNCHER_SCRIPT, mode="0555"),
            *[SecretFile(path, secrets[name], owner=str(settings.uid)) for name, path in secret_files.items()],
        ]

        def spec(
            role: str,
            memory_mb: int,
            health: HealthCheck | None,
            *,
            image: tuple[str, docker.RemoteImage] = (settings.image, self.image),
            command: list[str] | None = None,
            extra_env: Mapping[str, str] | None = None,
            extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
            aliases: tuple[str, ...] = (),
            wait_timeout_seconds: int = 120,
            run_timeout_seconds: int = 600,
            stop_grace_seconds: int = 30,
        ) -> ContainerSpec:
            reference, pulled = image
            return ContainerSpec(
                service="app",
                role=role,
                image=pulled.image_id,
                memory_mb=memory_mb,
                networks=[on_network(data_network), on_network(app_network, role, *aliases)],
                env={**common_env, **release_env(reference), "APP_ROLE": role, **(extra_env or {})},
                # The launcher first, then the image's own entrypoint and the role's command.
                entrypoint=[LAUNCHER, *settings.entrypoint],
                command=command,
                files=files,
                healthcheck=health,
                extra_labels=extra_labels or {},
                wait_timeout_seconds=wait_timeout_seconds,
                run_timeout_seconds=run_timeout_seconds,
                stop_grace_seconds=stop_grace_seconds,
            )

        newest = (canary.image, self.canary_image) if canary and self.canary_image else (settings.image, self.image)
        migration_spec = spec(
            "migrate",
            settings.migration_memory_limit_mb,
            None,
            # A canary's migrations run before it starts; expand-only, so stable runs on them too.
            image=newest,
            command=MIGRATION_COMMAND,
            run_timeout_seconds=settings.migration_timeout_seconds,
        )
        # The pre-migration backup is made for this very migration: whatever runs the migration
        # again (a new image, a rotated secret, a re-run marker) takes a fresh backup first.
        self.pre_migration_backup = (
            backup_before_migration(revision(ctx, migration_spec, ctx.rerun_jobs)) if backup_before_migration else None
        )
        gates = [succeeded(self.pre_migration_backup)] if self.pre_migration_backup else []
        self.migration = one_shot_container(
            ctx,
            ctx.name("migrate"),
            migration_spec,
            pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, *gates]),
        )
        # Web and workers wait for the migration to exit 0, through depends_on alone: none of their
        # inputs carries a job's output, so a job re-run never replaces them.
        after_migration = pulumi.ResourceOptions(parent=self, depends_on=[succeeded(self.migration)])

        web = settings.web

        def web_container(
            name: str, slot: str, image: tuple[str, docker.RemoteImage], track: dict[str, str]
        ) -> docker.Container:
            return long_running_container(
                ctx,
                name,
                spec(
                    "web",
                    web.memory_limit_mb,
                    HealthCheck(web_health_command(web.port), start_period="60s"),
                    image=image,
                    command=web.command,
                    extra_env={"PORT": str(web.port)},
                    extra_labels={
                        f"{LABEL_PREFIX}.port": str(web.port),
                        f"{LABEL_PREFIX}.probe.live": LIVE_PATH,
                        f"{LABEL_PREFIX}.probe.ready": READY_PATH,
                        f"{LABEL_PREFIX}.probe.health": HEALTH_PATH,
                        **track,
                    },
                    # The collector probes each slot by this alias; the edge routes by container name.
                    aliases=(slot,),
                    wait_timeout_seconds=web.health_timeout_seconds,
                    # SIGTERM, then this long to finish requests in flight before SIGKILL.
                    stop_grace_seconds=web.drain_seconds,
                ),
                after_migration,
                rolling=True,
            )

        self.web = [
            web_container(ctx.name("web", str(index)), web_slot(index), (settings.image, self.image), {})
            for index in range(web.replicas)
        ]
        # The canary's web containers: the same role, the new image, their own names and slots.
        # Their weight lives in the edge's routes alone, so a weight change touches neither them
        # nor the stable ones.
        self.canary = (
            [
                web_container(
                    ctx.name("web", "canary", str(index)),
                    canary_slot(index),
                    (canary.image, self.canary_image),
                    {f"{LABEL_PREFIX}.track": "canary"},
                )
                for index in range(canary.replicas)
            ]
            if canary and self.canary_image
            else []
        )
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
                        # Workers finish the job in hand on SIGTERM; give them the time to.
                        stop_grace_seconds=60,
                    ),
                    after_migration,
                    rolling=True,
                )
                for index in range(worker.replicas)
            ]
            for worker in settings.workers
        }
        self.register_outputs(
            {
                "migration": self.migration.name,
                "web": [c.name for c in self.web],
                "canary": [c.name for c in self.canary],
                "workers": {name: [c.name for c in cs] for name, cs in self.workers.items()},
            }
        )
