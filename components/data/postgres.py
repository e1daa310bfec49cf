"""PostgreSQL: the application's database, on the internal data network only.

Passwords are SCRAM-SHA-256 and required for every TCP connection. The password reaches the
server as a file (POSTGRES_PASSWORD_FILE), not an environment variable. The health check logs in
over TCP with that password and runs a query, so it fails on a wrong password, not only on a
dead server (pg_isready would pass on both).

The image only reads the bootstrap superuser's password when it initialises an empty data
directory, so a one-shot job owns it: it writes the file the server and its health check read (on
a small volume) and, once the database exists, changes that password in the running server over
the local socket (shared through a volume).

The app never logs in as the bootstrap superuser (`<user>`, the image's POSTGRES_USER): only the
jobs do, over the local socket. The app's database and everything in it belong to `<user>_owner`,
a role that cannot log in and is no superuser (postgres_logins.sh says what it may not do). The
app has two logins, `<user>_a` and `<user>_b`, members of that owner role and acting as it, kept
by a second job after the server is up; consumers use one of them, the one
`rotation.postgres-password` (a generation number) selects. A rotation gives a new password to
the other login only, then the consumers move over (created before the old ones go), so no
running consumer holds a password the server refuses, and PostgreSQL is never restarted for a
password. This is the alternating-users scheme of AWS Secrets Manager's own rotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.lib.build import REPO_ROOT, built_image, image_tag_for
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
from components.lib.files import read_shipped
from components.settings import PostgresSettings
from runner import pitr

PORT = 5432
HOSTNAME = "postgres"
DATA_DIR = "/var/lib/postgresql/data"
CREDENTIALS_DIR = "/var/lib/audit-x-credentials"
PASSWORD_FILE = f"{CREDENTIALS_DIR}/postgres-password"
NEW_PASSWORD_FILE = f"{SECRETS_DIR}/postgres-password"
SOCKET_DIR = "/var/run/postgresql"
# uid/gid of the `postgres` user in the official Debian-based image.
POSTGRES_UID = "999"
PGDATA = f"{DATA_DIR}/pgdata"  # a subdirectory, so initdb never trips over lost+found
# The image with pgBackRest (its Dockerfile), and where pgBackRest keeps its WAL queue.
SERVER_IMAGE_CONTEXT = "components/data/postgres_image"
SPOOL_DIR = "/var/spool/pgbackrest"


@dataclass(frozen=True)
class Archiving:
    """Continuous WAL archiving through pgBackRest (components/backups/pitr.py): the version to
    build the server's image with, how often a segment is closed, and pgBackRest's two files."""

    pgbackrest_version: str
    archive_timeout_seconds: int
    config: pulumi.Input[str]
    secrets: pulumi.Output[str]

    def files(self, owner: str) -> list[SecretFile | ConfigFile]:
        """pgBackRest's configuration, and its secrets readable by `owner` alone: the server and
        the backup runner use the very same two."""
        return [ConfigFile(pitr.CONFIG_FILE, self.config), SecretFile(pitr.SECRETS_FILE, self.secrets, owner=owner)]


# Runs inside the container with its environment. PGPORT is honoured by libpq when set, which is
# how the tests point the very same command at a throwaway server.
HEALTH_COMMAND = (
    'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")" psql --host=127.0.0.1 --no-password '
    '--username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --tuples-only --command="SELECT 1" >/dev/null'
)


# The jobs' scripts, beside this file, run with `sh -c` in the postgres image.
PASSWORD_JOB_SCRIPT = read_shipped(__file__, "postgres_password.sh")
LOGINS_JOB_SCRIPT = read_shipped(__file__, "postgres_logins.sh")
STANZA_JOB_SCRIPT = read_shipped(__file__, "pgbackrest_stanza.sh")


def login_role(user: str, slot: str) -> str:
    """The name of one of the app's two logins: `audit_x_a`, `audit_x_b`."""
    return f"{user}_{slot}"


def owner_role(user: str) -> str:
    """The role that owns the app's database and what is in it: `audit_x_owner`. It cannot log
    in and is no superuser (postgres_logins.sh); the app's logins act as it."""
    return f"{user}_owner"


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


@dataclass(frozen=True)
class DatabaseEndpoint:
    """What a client of the database needs: where it is, which database, and the app's login now."""

    host: str
    port: int
    database: str
    login: str
    password: pulumi.Output[str]


class Postgres(pulumi.ComponentResource):
    """The server, the job that owns the bootstrap superuser's password file, and the job that
    keeps the owner role and the app's two logins. `app_login` is what consumers connect as; `ready` gates them."""

    volume: docker.Volume
    credentials_volume: docker.Volume
    socket_volume: docker.Volume
    image: docker.RemoteImage
    server_image: docker.Image | None
    server_image_name: str
    spool_volume: docker.Volume
    stanza_job: docker.Container | None
    password_job: docker.Container
    container: docker.Container
    logins_job: docker.Container
    user: str
    database: str
    app_login: str
    owner_role: str
    app_password: pulumi.Output[str]
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
        logins: Mapping[str, pulumi.Output[str]],
        active_login: str,
        data_network: docker.Network,
        archiving: Archiving | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Postgres", name, None, opts)
        self.user = settings.user
        self.database = database
        self.app_login = login_role(settings.user, active_login)
        self.owner_role = owner_role(settings.user)
        self.app_password = logins[active_login]

        self.volume = named_volume(ctx, f"{name}-data", "postgres", "data", self)
        self.credentials_volume = named_volume(ctx, f"{name}-credentials", "postgres", "credentials", self)
        self.socket_volume = named_volume(ctx, f"{name}-socket", "postgres", "socket", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        pgdata = PGDATA
        shared = {
            DATA_DIR: self.volume.name,
            CREDENTIALS_DIR: self.credentials_volume.name,
            SOCKET_DIR: self.socket_volume.name,
        }

        def job(role: str, script: str, env: Mapping[str, str], files: list[SecretFile]) -> ContainerSpec:
            return script_job(
                service="postgres",
                role=role,
                image=self.image.image_id,
                script=script,
                networks=[on_network(data_network)],
                env={"POSTGRES_USER": settings.user, "PGHOST": SOCKET_DIR, **env},
                files=files,
                volumes=shared,
            )

        # Writes the superuser's password file before the server's first start (initdb reads it),
        # and on a rotation changes that password in the running server.
        self.password_job = one_shot_container(
            ctx,
            f"{name}-password",
            job(
                "password",
                PASSWORD_JOB_SCRIPT,
                {
                    "PGDATA": pgdata,
                    "PASSWORD_FILE": PASSWORD_FILE,
                    "NEW_PASSWORD_FILE": NEW_PASSWORD_FILE,
                    "POSTGRES_UID": POSTGRES_UID,
                },
                [SecretFile(NEW_PASSWORD_FILE, password)],
            ),
            pulumi.ResourceOptions(parent=self),
        )
        # With archiving, the server runs the pinned image plus pgBackRest, built on the host; its
        # data volume is the same one, so changing to it keeps the data (the container is
        # replaced once). pgBackRest's queue gets a volume of its own.
        server_image: pulumi.Input[str] = self.image.image_id
        server_files: list[SecretFile | ConfigFile] = []
        server_volumes = dict(shared)
        command = server_flags(settings)
        self.server_image = None
        if archiving is not None:
            server_args = {"POSTGRES_IMAGE": settings.image, "PGBACKREST_VERSION": archiving.pgbackrest_version}
            self.server_image_name = f"{name}-server:{image_tag_for(server_args, REPO_ROOT / SERVER_IMAGE_CONTEXT)}"
            self.server_image = built_image(f"{name}-server", SERVER_IMAGE_CONTEXT, server_args, self)
            server_image = self.server_image.image_name
            self.spool_volume = named_volume(ctx, f"{name}-spool", "postgres", "spool", self)
            server_volumes[SPOOL_DIR] = self.spool_volume.name
            server_files = archiving.files(owner=POSTGRES_UID)
            for key, value in pitr.server_settings(archiving.archive_timeout_seconds).items():
                command += ["-c", f"{key}={value}"]
        # The server is never replaced for a password: none of its inputs carries one. It waits
        # for the password file through depends_on alone.
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="postgres",
                role="database",
                image=server_image,
                memory_mb=settings.memory_limit_mb,
                shm_size_mb=settings.shm_size_mb,
                networks=[on_network(data_network, HOSTNAME)],
                command=command,
                files=server_files,
                env={
                    "POSTGRES_USER": settings.user,
                    "POSTGRES_DB": database,
                    "POSTGRES_PASSWORD_FILE": PASSWORD_FILE,
                    "POSTGRES_HOST_AUTH_METHOD": "scram-sha-256",
                    # Loopback TCP needs the password too, so the health check proves it; the local
                    # socket stays trust for the jobs and `docker exec psql`, which need root on
                    # the host anyway.
                    "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256",
                    "PGDATA": pgdata,
                },
                volumes=server_volumes,
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
                # A clean shutdown checkpoints; give it time rather than SIGKILL mid-write.
                stop_grace_seconds=60,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[succeeded(self.password_job)]),
        )
        self.stanza_job = None
        if archiving is not None and self.server_image is not None:
            # Archiving fails until the stanza exists: create it once the server is up, and prove
            # a segment reaches the repository. Its failure fails the update, loudly.
            self.stanza_job = one_shot_container(
                ctx,
                f"{name}-pgbackrest",
                script_job(
                    service="postgres",
                    role="pgbackrest",
                    image=self.server_image.image_name,
                    script=STANZA_JOB_SCRIPT,
                    networks=[on_network(data_network)],
                    env={"STANZA": pitr.STANZA, "CONFIG_FILE": pitr.CONFIG_FILE, "SECRETS_DIR": pitr.SECRETS_DIR},
                    files=server_files,
                    volumes=server_volumes,
                    run_timeout_seconds=300,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
            )
        login_names = {slot: login_role(settings.user, slot) for slot in logins}
        self.logins_job = one_shot_container(
            ctx,
            f"{name}-logins",
            job(
                "logins",
                LOGINS_JOB_SCRIPT,
                {
                    "POSTGRES_DB": database,
                    "OWNER_ROLE": self.owner_role,
                    "LOGINS": " ".join(login_names[slot] for slot in sorted(logins)),
                    "SECRETS_DIR": SECRETS_DIR,
                },
                [SecretFile(f"{SECRETS_DIR}/{login_names[slot]}", value) for slot, value in sorted(logins.items())],
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
        )
        self.register_outputs({"container": self.container.name, "database": database, "login": self.app_login})

    @property
    def endpoint(self) -> DatabaseEndpoint:
        """The database as the app and the backup runner reach it, as the app's login in use."""
        return DatabaseEndpoint(self.host, self.port, self.database, self.app_login, self.app_password)

    @property
    def ready(self) -> pulumi.Output[docker.Container]:
        """For consumers' depends_on: the logins exist with their current passwords."""
        return succeeded(self.logins_job)
