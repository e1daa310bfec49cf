"""Redis: job queues and cache, on the internal data network only.

A password is required for every command. The default user has two passwords, used in turn
(the jobs in this file keep them, live and in the users file the server includes): consumers
use one, a rotation (`rotation.redis-password`, a generation number) changes the other, so Redis
is never restarted for a password and no running consumer is refused; once every consumer runs on
the new one, the retire job removes the old one, so a leaked password dies with one rotation.
Persistence is append-only (fsync every second) plus snapshots, because job queues must survive a
restart; `noeviction`, because a queue that
silently drops jobs under memory pressure is worse than one that refuses new ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    SECRETS_DIR,
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
    pinned_image,
    script_job,
    succeeded,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped, render_shipped
from components.settings import RedisSettings

PORT = 6379
HOSTNAME = "redis"
CONFIG_FILE = "/usr/local/etc/redis/redis.conf"
CREDENTIALS_DIR = "/var/lib/audit-x-credentials"
# The default user and its two passwords, written by the password job, included by redis.conf.
USERS_FILE = f"{CREDENTIALS_DIR}/users.conf"
# uid/gid of the `redis` user in the official Debian-based image.
REDIS_UID = "999"

# Runs inside the container with its environment: logs in with the first of the two passwords.
# REDISCLI_AUTH keeps the password off the command line; redis-cli exits 0 even on an auth error,
# hence the check for PONG. REDIS_PORT is unset in the container and lets the tests aim the same
# command at a throwaway server.
HEALTH_COMMAND = (
    'REDISCLI_AUTH="$(sed -n \'s/^user default on >\\([^ ]*\\) .*/\\1/p\' "$REDIS_USERS_FILE")" '
    'redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping | grep -qx PONG'
)
PASSWORD_JOB_SCRIPT = read_shipped(__file__, "redis_password.sh")


def server_config(settings: RedisSettings) -> str:
    """redis.conf (beside this file) without secrets; the passwords come from the included users file."""
    return render_shipped(
        __file__, "redis.conf", port=PORT, max_memory_mb=settings.max_memory_mb, users_file=USERS_FILE
    )


class Redis(pulumi.ComponentResource):
    """The server and the job that keeps its two passwords; consumers use `password`."""

    volume: docker.Volume
    credentials_volume: docker.Volume
    image: docker.RemoteImage
    password_job: docker.Container
    container: docker.Container
    password: pulumi.Output[str]
    active_slot: str
    host: str = HOSTNAME
    port: int = PORT

    def __init__(
        self,
        name: str,
        settings: RedisSettings,
        *,
        ctx: EnvironmentContext,
        passwords: Mapping[str, pulumi.Output[str]],
        active: str,
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Redis", name, None, opts)
        self.password = passwords[active]
        self.active_slot = active
        self.volume = named_volume(ctx, f"{name}-data", "redis", "data", self)
        self.credentials_volume = named_volume(ctx, f"{name}-credentials", "redis", "credentials", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        # What the retire job (retire_unused_password) is declared with, later, by the environment.
        self._name_prefix, self._ctx, self._data_network, self._active = name, ctx, data_network, active
        self.password_job = self._password_job(
            f"{name}-password", "password", passwords, pulumi.ResourceOptions(parent=self)
        )
        # Never replaced for a password: none of its inputs carries one.
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="redis",
                role="queue",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                networks=[on_network(data_network, HOSTNAME)],
                command=["redis-server", CONFIG_FILE],
                env={"REDIS_USERS_FILE": USERS_FILE},
                files=[ConfigFile(CONFIG_FILE, server_config(settings))],
                volumes={"/data": self.volume.name, CREDENTIALS_DIR: self.credentials_volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[succeeded(self.password_job)]),
        )
        self.register_outputs({"container": self.container.name})

    def _password_job(
        self,
        name: str,
        role: str,
        passwords: Mapping[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions,
    ) -> docker.Container:
        return one_shot_container(
            self._ctx,
            name,
            script_job(
                service="redis",
                role=role,
                image=self.image.image_id,
                script=PASSWORD_JOB_SCRIPT,
                networks=[on_network(self._data_network)],
                env={
                    "SECRETS_DIR": SECRETS_DIR,
                    "USERS_FILE": USERS_FILE,
                    "REDIS_HOST": HOSTNAME,
                    "REDIS_PORT": str(PORT),
                    "REDIS_UID": REDIS_UID,
                },
                files=[
                    SecretFile(f"{SECRETS_DIR}/password-{slot}", value) for slot, value in sorted(passwords.items())
                ],
                volumes={CREDENTIALS_DIR: self.credentials_volume.name},
                memory_mb=64,
            ),
            opts,
        )

    def retire_unused_password(
        self, *, after: Sequence[pulumi.Input[pulumi.Resource]], opts: pulumi.ResourceOptions
    ) -> docker.Container:
        """The job that leaves Redis the active slot's password alone, once everything in `after`
        (every consumer of Redis) runs on it: after a rotation the old password is refused at
        once, so one rotation locks out a leaked one. Its only input that changes is the active
        password, so it runs again exactly when a rotation moved the consumers.

        `opts` are the environment's (its parent and providers), not this component's: what it
        waits for waits for Redis, so as Redis's child it would wait for itself."""
        return self._password_job(
            f"{self._name_prefix}-password-retire",
            "password-retire",
            {self._active: self.password},
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(after))),
        )
