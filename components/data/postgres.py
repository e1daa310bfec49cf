"""PostgreSQL: the application's database, on the internal data network only.

Passwords are SCRAM-SHA-256 and required for every TCP connection. The password reaches the
server as a file (POSTGRES_PASSWORD_FILE), not an environment variable. The health check logs in
over TCP with that password and runs a query, so it fails on a wrong password, not only on a
dead server (pg_isready would pass on both).

The image only reads the password when it initialises an empty data directory, so a one-shot
job owns it: it writes the file the server and its health check read (on a small volume) and,
once the database exists, changes the role's password in the running server over the local
socket (shared through a volume). A rotated password therefore takes effect without restarting
PostgreSQL, and before any consumer is restarted with it.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    SECRETS_DIR,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
    pinned_image,
    require_success,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped
from components.settings import PostgresSettings

PORT = 5432
HOSTNAME = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
CREDENTIALS_DIR = "/var/lib/audit-x-credentials"
PASSWORD_FILE = f"{CREDENTIALS_DIR}/postgres-password"
NEW_PASSWORD_FILE = f"{SECRETS_DIR}/postgres-password"
SOCKET_DIR = "/var/run/postgresql"
# uid/gid of the `postgres` user in the official Debian-based image.
POSTGRES_UID = "999"

# Runs inside the container with its environment. PGPORT is honoured by libpq when set, which is
# how the tests point the very same command at a throwaway server.
HEALTH_COMMAND = (
    'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql --host=127.0.0.1 --no-password '
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --tuples-only --command="SELECT 1" >/dev/null'
)


# The password job: a script beside this file, run with `sh -c` in the postgres image.
PASSWORD_JOB_SCRIPT = read_shipped(__file__, "postgres_password.sh")


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
    credentials_volume: docker.Volume
    socket_volume: docker.Volume
    image: docker.RemoteImage
    password_job: docker.Container
    container: docker.Container
    user: str
    database: str
    host: str = HOSTNAME
    port: int = PORT

    def __init__(
        self,
        name: str,
        settings: PostgresSettings,
        *,
        ctx: EnvironmentContext,
        database: str,
        password: pulumi.Output[str],
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Postgres", name, None, opts)
        self.user = settings.user
        self.database = database

        self.volume = named_volume(ctx, f"{name}-data", "postgres", "data", self)
        self.credentials_volume = named_volume(ctx, f"{name}-credentials", "postgres", "credentials", self)
        self.socket_volume = named_volume(ctx, f"{name}-socket", "postgres", "socket", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        pgdata = f"{DATA_DIR}/pgdata"  # a subdirectory, so initdb never trips over lost+found
        shared = {
            DATA_DIR: self.volume.name,
            CREDENTIALS_DIR: self.credentials_volume.name,
            SOCKET_DIR: self.socket_volume.name,
        }
        self.password_job = one_shot_container(
            ctx,
            f"{name}-password",
            ContainerSpec(
                service="postgres",
                role="password",
                image=self.image.image_id,
                memory_mb=128,
                networks=[on_network(data_network)],
                command=["sh", "-c", PASSWORD_JOB_SCRIPT],
                env={
                    "POSTGRES_USER": settings.user,
                    "PGDATA": pgdata,
                    "PGHOST": SOCKET_DIR,
                    "PASSWORD_FILE": PASSWORD_FILE,
                    "NEW_PASSWORD_FILE": NEW_PASSWORD_FILE,
                    "POSTGRES_UID": POSTGRES_UID,
                },
                # A new password is a new upload: the job is replaced, so it runs again.
                files=[SecretFile(NEW_PASSWORD_FILE, password)],
                volumes=shared,
                healthcheck=None,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        password_set = require_success(f"{name}-password", self.password_job.exit_code)
        self.container = long_running_container(
            ctx,
            name,
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
                    # socket stays trust for the password job and `docker exec psql`, which need
                    # root on the host anyway.
                    "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256",
                    "PGDATA": pgdata,
                },
                volumes=shared,
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
                # Not created before the password file exists (first deploy).
                extra_labels={"io.audit-x.password-set": password_set},
                # A clean shutdown checkpoints; give it time rather than SIGKILL mid-write.
                stop_grace_seconds=60,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.password_job]),
        )
        self.register_outputs({"container": self.container.name, "database": database})
