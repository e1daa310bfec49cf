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
from dataclasses import dataclass

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
from components.platform.network import Networks
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


@dataclass(frozen=True)
class AppImage:
    """An image the app runs: the reference config gives (its tag names the release) and the pull."""

    reference: str
    pulled: docker.RemoteImage


@dataclass(frozen=True)
class AppRoles:
    """How every role's container is specified: the same wiring for all (environment, secrets as
    files, networks, the launcher), each with its own command, image, memory and health."""

    settings: AppSettings
    environment: str
    env: Mapping[str, pulumi.Input[str]]
    files: list[SecretFile | ConfigFile]
    networks: Networks
    with_sentry: bool

    @classmethod
    def wired(
        cls,
        settings: AppSettings,
        *,
        environment: str,
        env: Mapping[str, pulumi.Input[str]],
        secrets: Mapping[str, pulumi.Output[str]],
        networks: Networks,
    ) -> AppRoles:
        common_env = {
            **env,
            "RAILS_ENV": settings.rails_env,
            "RACK_ENV": settings.rails_env,
            "RAILS_MAX_THREADS": str(settings.rails_max_threads),
            "RAILS_LOG_TO_STDOUT": "true",
            "RAILS_LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
        }
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
        return cls(settings, environment, common_env, files, networks, with_sentry="SENTRY_DSN" in secrets)

    def release_env(self, image: str) -> dict[str, str]:
        """The release name Sentry and APP_RELEASE use: the tag, or the digest when pinned by digest."""
        release = image_tag(image)
        sentry = {"SENTRY_ENVIRONMENT": self.environment, "SENTRY_RELEASE": release} if self.with_sentry else {}
        return {"APP_RELEASE": release, **sentry}

    def spec(
        self,
        role: str,
        memory_mb: int,
        health: HealthCheck | None,
        *,
        image: AppImage,
        command: list[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
        aliases: tuple[str, ...] = (),
        wait_timeout_seconds: int = 120,
        run_timeout_seconds: int = 600,
        stop_grace_seconds: int = 30,
    ) -> ContainerSpec:
        return ContainerSpec(
            service="app",
            role=role,
            image=image.pulled.image_id,
            memory_mb=memory_mb,
            networks=[on_network(self.networks.data), on_network(self.networks.app, role, *aliases)],
            env={**self.env, **self.release_env(image.reference), "APP_ROLE": role, **(extra_env or {})},
            # The launcher first, then the image's own entrypoint and the role's command.
            entrypoint=[LAUNCHER, *self.settings.entrypoint],
            command=command,
            files=self.files,
            healthcheck=health,
            extra_labels=extra_labels or {},
            wait_timeout_seconds=wait_timeout_seconds,
            run_timeout_seconds=run_timeout_seconds,
            stop_grace_seconds=stop_grace_seconds,
        )


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
        networks: Networks,
        depends_on: list[pulumi.Input[pulumi.Resource]],
        backup_before_migration: Callable[[pulumi.Output[str]], docker.Container | None] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:app:App", name, None, opts)
        self._ctx = ctx
        self._settings = settings
        self.image = pinned_image(ctx.name("app", "image"), settings.image, self)
        canary = settings.canary
        self.canary_image = pinned_image(ctx.name("app", "canary", "image"), canary.image, self) if canary else None
        stable = AppImage(settings.image, self.image)
        newest = AppImage(canary.image, self.canary_image) if canary and self.canary_image else stable
        self._roles = AppRoles.wired(settings, environment=ctx.environment, env=env, secrets=secrets, networks=networks)

        self.migration = self._migration(newest, depends_on, backup_before_migration)
        # Web and workers wait for the migration to exit 0, through depends_on alone: none of their
        # inputs carries a job's output, so a job re-run never replaces them.
        after_migration = pulumi.ResourceOptions(parent=self, depends_on=[succeeded(self.migration)])
        self.web = [
            self._web_container(ctx.name("web", str(index)), web_slot(index), stable, {}, after_migration)
            for index in range(settings.web.replicas)
        ]
        # The canary's web containers: the same role, the new image, their own names and slots.
        # Their weight lives in the edge's routes alone, so a weight change touches neither them
        # nor the stable ones.
        self.canary = (
            [
                self._web_container(
                    ctx.name("web", "canary", str(index)),
                    canary_slot(index),
                    newest,
                    {f"{LABEL_PREFIX}.track": "canary"},
                    after_migration,
                )
                for index in range(canary.replicas)
            ]
            if canary and self.canary_image
            else []
        )
        self.workers = self._workers(stable, after_migration)
        self.register_outputs(
            {
                "migration": self.migration.name,
                "web": [c.name for c in self.web],
                "canary": [c.name for c in self.canary],
                "workers": {name: [c.name for c in cs] for name, cs in self.workers.items()},
            }
        )

    def _migration(
        self,
        image: AppImage,
        depends_on: list[pulumi.Input[pulumi.Resource]],
        backup_before_migration: Callable[[pulumi.Output[str]], docker.Container | None] | None,
    ) -> docker.Container:
        """`bin/rails db:migrate` to completion, after a fresh backup where config asks for one."""
        ctx, settings = self._ctx, self._settings
        migration_spec = self._roles.spec(
            "migrate",
            settings.migration_memory_limit_mb,
            None,
            # A canary's migrations run before it starts; expand-only, so stable runs on them too.
            image=image,
            command=MIGRATION_COMMAND,
            run_timeout_seconds=settings.migration_timeout_seconds,
        )
        # The pre-migration backup is made for this very migration: whatever runs the migration
        # again (a new image, a rotated secret, a re-run marker) takes a fresh backup first.
        self.pre_migration_backup = (
            backup_before_migration(revision(ctx, migration_spec, ctx.rerun_jobs)) if backup_before_migration else None
        )
        gates = [succeeded(self.pre_migration_backup)] if self.pre_migration_backup else []
        return one_shot_container(
            ctx,
            ctx.name("migrate"),
            migration_spec,
            pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, *gates]),
        )

    def containers(self) -> list[docker.Container]:
        """Every long-running container of the app: web (stable and canary) and workers."""
        return [*self.web, *self.canary, *(c for role in self.workers.values() for c in role)]

    def _web_container(
        self, name: str, slot: str, image: AppImage, track: dict[str, str], after: pulumi.ResourceOptions
    ) -> docker.Container:
        web = self._settings.web
        return long_running_container(
            self._ctx,
            name,
            self._roles.spec(
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
            after,
            rolling=True,
        )

    def _workers(self, image: AppImage, after: pulumi.ResourceOptions) -> dict[str, list[docker.Container]]:
        ctx = self._ctx
        return {
            worker.name: [
                long_running_container(
                    ctx,
                    ctx.name("worker", worker.name, str(index)),
                    self._roles.spec(
                        worker.name,
                        worker.memory_limit_mb,
                        HealthCheck(worker.health_command or DEFAULT_WORKER_HEALTH, start_period="120s"),
                        image=image,
                        command=worker.command,
                        extra_env={"HEARTBEAT_FILE": HEARTBEAT_FILE},
                        # Workers finish the job in hand on SIGTERM; give them the time to.
                        stop_grace_seconds=60,
                    ),
                    after,
                    rolling=True,
                )
                for index in range(worker.replicas)
            ]
            for worker in self._settings.workers
        }
