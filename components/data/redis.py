"""Redis: job queues and cache, on the internal data network only.

A password is required for every command. Persistence is append-only (fsync every second)
plus snapshots, because job queues must survive a restart; `noeviction`, because a queue that
silently drops jobs under memory pressure is worse than one that refuses new ones.
"""

from __future__ import annotations

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
    pinned_image,
)
from components.lib.context import EnvironmentContext
from components.lib.files import render_shipped
from components.settings import RedisSettings

PORT = 6379
HOSTNAME = "redis"
CONFIG_FILE = "/usr/local/etc/redis/redis.conf"
AUTH_FILE = f"{SECRETS_DIR}/redis-auth.conf"
# uid/gid of the `redis` user in the official Debian-based image.
REDIS_UID = "999"

# Runs inside the container with its environment. REDISCLI_AUTH keeps the password off the
# command line; redis-cli exits 0 even on an auth error, hence the check for PONG. REDIS_PORT is
# unset in the container and lets the tests aim the same command at a throwaway server.
HEALTH_COMMAND = (
    'REDISCLI_AUTH="$(sed -n \'s/^requirepass //p\' "$REDIS_AUTH_FILE")" '
    'redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping | grep -qx PONG'
)


def server_config(settings: RedisSettings) -> str:
    """redis.conf (beside this file) without secrets; the password comes from the included auth file."""
    return render_shipped(__file__, "redis.conf", port=PORT, max_memory_mb=settings.max_memory_mb, auth_file=AUTH_FILE)


class Redis(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    host: str = HOSTNAME
    port: int = PORT

    def __init__(
        self,
        name: str,
        settings: RedisSettings,
        *,
        ctx: EnvironmentContext,
        password: pulumi.Output[str],
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Redis", name, None, opts)
        self.volume = named_volume(ctx, f"{name}-data", "redis", "data", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
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
                env={"REDIS_AUTH_FILE": AUTH_FILE},
                files=[
                    ConfigFile(CONFIG_FILE, server_config(settings)),
                    SecretFile(AUTH_FILE, password.apply(lambda p: f"requirepass {p}\n"), owner=REDIS_UID),
                ],
                volumes={"/data": self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container": self.container.name})
