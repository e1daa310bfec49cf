"""PostgreSQL: the application's database, on the internal data network only.

Passwords are SCRAM-SHA-256 and required for every TCP connection. The password reaches the
server as a file (POSTGRES_PASSWORD_FILE), not an environment variable. The health check logs in
over TCP with that password and runs a query, so it fails on a wrong password, not only on a
dead server (pg_isready would pass on both).
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.containers import (
    SECRETS_DIR,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    pinned_image,
)
from components.context import EnvironmentContext
from components.settings import PostgresSettings

PORT = 5432
HOSTNAME = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
PASSWORD_FILE = f"{SECRETS_DIR}/postgres-password"
# uid/gid of the `postgres` user in the official Debian-based image.
POSTGRES_UID = "999"

# Runs inside the container with its environment. PGPORT is honoured by libpq when set, which is
# how the tests point the very same command at a throwaway server.
HEALTH_COMMAND = (
    'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql --host=127.0.0.1 --no-password '
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --tuples-only --command="SELECT 1" >/dev/null'
)


def server_flags(settings: PostgresSettings) -> list[str]:
    """`postgres -c` flags: memory from config, and SCRAM for every password set."""
    flags = {
        "password_encryption": "scram-sha-256",
        "max_connections": str(settings.max_connections),
        "shared_buffers": f"{settings.shared_buffers_mb}MB",
        "effective_cache_size": f"{settings.effective_cache_size_mb}MB",
        "work_mem": f"{settings.work_mem_mb}MB",
        "maintenance_work_mem": f"{settings.maintenance_work_mem_mb}MB",
        "log_min_duration_statement": "1000",
        "log_connections": "off",
    }
    command = ["postgres"]
    for key, value in flags.items():
        command += ["-c", f"{key}={value}"]
    return command


class Postgres(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    user: str
    database: str
    host: str = HOSTNAME
    port: int = PORT

    def __init__(
        self,
        ctx: EnvironmentContext,
        settings: PostgresSettings,
        *,
        database: str,
        password: pulumi.Output[str],
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Postgres", ctx.name("postgres"), None, opts)
        self.user = settings.user
        self.database = database

        self.volume = named_volume(ctx, "postgres", "data", self)
        self.image = pinned_image(ctx, "postgres", settings.image, self)
        self.container = long_running_container(
            ctx,
            ctx.name("postgres"),
            ContainerSpec(
                service="postgres",
                role="database",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                networks=[on_network(data_network, HOSTNAME)],
                command=server_flags(settings),
                env={
                    "POSTGRES_USER": settings.user,
                    "POSTGRES_DB": database,
                    "POSTGRES_PASSWORD_FILE": PASSWORD_FILE,
                    "POSTGRES_HOST_AUTH_METHOD": "scram-sha-256",
                    # Loopback TCP needs the password too, so the health check proves it; the local
                    # socket stays trust for `docker exec psql`, which already needs root on the host.
                    "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256",
                    # A subdirectory, so initdb never trips over the volume's lost+found.
                    "PGDATA": f"{DATA_DIR}/pgdata",
                },
                files=[SecretFile(PASSWORD_FILE, password, owner=POSTGRES_UID)],
                volumes={DATA_DIR: self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
                # A clean shutdown checkpoints; give it time rather than SIGKILL mid-write.
                stop_grace_seconds=60,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container": self.container.name, "database": database})
