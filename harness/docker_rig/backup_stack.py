"""The database and its backups on the rig, as the program declares them: the program's PostgreSQL
image (PostgreSQL 17, pgBackRest 2.55) archiving every WAL segment to an S3 server (moto, TLS on
443), the program's pgBackRest job creating the stanza, and the program's backup runner image
beside it with the server's data directory and socket, on one internal network of the rig's.

Names, paths, variables, flags and files are the program's own (components/data/postgres.py,
components/backups/runner.py, runner/pitr.py); only the values of secrets and the bucket are the
tests'. The S3 server's HTTP port is published on 127.0.0.1 for the tests to look into the bucket.

    with backup_stack(rig, images) as stack:
        stack.runner_cli("postgres")       # `python -m runner postgres` in the runner's container
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3

from components.backups import runner as runner_component
from components.data import postgres
from components.lib.files import read_shipped
from components.settings import load_settings
from harness.docker_rig import catalogue
from harness.docker_rig.containers import Container, File, container, network, volume
from harness.docker_rig.engine import Rig, RigError
from harness.docker_rig.images import RigImages
from harness.mock_engine import load_stack_config
from runner import pitr

DATABASE = "audit_x_rig"
USER = "audit_x"
PASSWORD = "RigDatabasePassword0123456789abcdef"
BUCKET = "audit-x-rig-backups"
REGION = "eu-west-1"
ACCESS_KEY, SECRET_KEY = "AKIARIGTEST000000000", "rig-secret-access-key-000000000000000000"
PASSPHRASE = "rig-cipher-passphrase-0123456789abcdef"
POSTGRES_UID = int(postgres.POSTGRES_UID)
RUNNER_UID = int(runner_component.RUNNER_UID)
STANZA_JOB_SCRIPT = read_shipped(postgres.__file__, "pgbackrest_stanza.sh")


def pitr_settings(archive_push_timeout_seconds: int = 60) -> pitr.Settings:
    """pgBackRest's settings as the program renders them, the repository in the rig's S3 server."""
    prod = load_settings(load_stack_config("prod")).pitr
    return pitr.Settings(
        repository=pitr.Repository(
            bucket=BUCKET, region=REGION, endpoint="s3", port=443, verify_tls=False, path_style=True
        ),
        retention_days=prod.retention_days,
        queue_max_mb=prod.archive_queue_max_mb,
        pg_path=postgres.PGDATA,
        pg_socket_path=postgres.SOCKET_DIR,
        pg_user=USER,
        archive_push_timeout_seconds=archive_push_timeout_seconds,
    )


def pgbackrest_files(owner: int, settings: pitr.Settings) -> list[File]:
    """The two files (components/data/postgres.py's Archiving.files): config 0444, secrets 0400."""
    secrets = pitr.render_secrets(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, cipher_pass=PASSPHRASE)
    return [
        File(pitr.CONFIG_FILE, pitr.render_config(settings), owner=0, mode=0o444),
        File(pitr.SECRETS_FILE, secrets, owner=owner, mode=0o400),
    ]


def server_command(archive_timeout_seconds: int) -> list[str]:
    settings = load_settings(load_stack_config("prod")).postgres
    command = postgres.server_flags(settings)
    for key, value in pitr.server_settings(archive_timeout_seconds).items():
        command += ["-c", f"{key}={value}"]
    return command


def s3_client(port: int) -> Any:
    """boto3 on the S3 server's port published on 127.0.0.1."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@dataclass
class BackupStack:
    rig: Rig
    network: str
    s3: Container
    server: Container
    runner: Container
    s3_port: int
    volumes: dict[str, str]

    def s3_client(self) -> Any:
        return s3_client(self.s3_port)

    def keys(self, prefix: str = "") -> list[str]:
        client, keys = self.s3_client(), []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def sql(self, statement: str, database: str = DATABASE) -> str:
        """psql in the server's container, over its socket, as the database's owner."""
        code, out = self.server.exec(
            *("psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-U", USER, "-d", database, "-tAc", statement),
            user="postgres",
        )
        if code != 0:
            raise RigError(f"psql failed ({code}): {out.strip()}")
        return out.strip()

    def runner_cli(self, *args: str, timeout: float = 600) -> tuple[int, str]:
        """`python -m runner ARGS` in the runner's container, as its user, with its environment."""
        return self.runner.exec("python", "-m", "runner", *args, timeout=timeout)


def runner_env() -> dict[str, str]:
    """The variables components/backups/runner.py gives the runner (PITR on), with the rig's values."""
    return {
        "BACKUP_ENVIRONMENT": "rig",
        "BACKUP_BUCKET": BUCKET,
        "AWS_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": runner_component.CREDENTIALS_FILE,
        "BACKUP_WRITER_PROFILE": "writer",
        "S3_ENDPOINT_URL": "http://s3:5000",
        "BACKUP_LOCK_MODE": "off",
        "BACKUP_PART_SIZE_MB": "5",
        "BACKUP_STATE_DIR": runner_component.STATE_DIR,
        "BACKUP_SCHEDULE_INFLUXDB": "off",
        "PGHOST": postgres.HOSTNAME,
        "PGPORT": "5432",
        "PGUSER": USER,
        "PGDATABASE": DATABASE,
        "PGPASSWORD_FILE": runner_component.PG_PASSWORD_FILE,
        "PITR_PG_SOCKET": postgres.SOCKET_DIR,
    }


def runner_files(settings: pitr.Settings) -> list[File]:
    # One profile for writing and one (default) for reading: the reader's key is off the host in the
    # program; here both are moto's.
    credentials = "".join(
        f"[{profile}]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        for profile in ("writer", "default")
    )
    return [
        *pgbackrest_files(RUNNER_UID, settings),
        File(runner_component.CREDENTIALS_FILE, credentials, owner=RUNNER_UID),
        File(runner_component.PG_PASSWORD_FILE, PASSWORD, owner=RUNNER_UID),
    ]


def run_job(rig: Rig, image: str, script: str, *, net: str, options: list[str], files: list[File]) -> str:
    """A one-shot job (`sh -c SCRIPT`, as the program's script jobs run); its output, or RigError."""
    with container(rig, image, "sh", "-c", script, network=net, options=options, files=files) as job:
        code = int(rig.docker("wait", job.name, timeout=300).stdout.strip())
        out = job.logs()
        if code != 0:
            raise RigError(f"the job exited {code}: {out.strip()[-2000:]}")
        return out


@contextlib.contextmanager
def backup_stack(rig: Rig, images: RigImages, *, archive_timeout_seconds: int = 60) -> Iterator[BackupStack]:
    server_image = images[catalogue.POSTGRES_SERVER]
    runner_image = images[catalogue.BACKUP_RUNNER]
    s3_image = images[catalogue.S3]
    settings = pitr_settings()
    with contextlib.ExitStack() as stack:
        net = stack.enter_context(network(rig, internal=True, prefix="rig-data"))
        names = {path: stack.enter_context(volume(rig)) for path in ("data", "socket", "spool", "state")}
        data = ["-v", f"{names['data']}:{postgres.DATA_DIR}", "-v", f"{names['socket']}:{postgres.SOCKET_DIR}"]
        # A published port needs a network with a way out: the S3 server is on a second, plain one
        # too, for the tests alone; the database and the runner reach it on the internal one.
        public = stack.enter_context(network(rig, prefix="rig-s3"))
        s3 = stack.enter_context(
            container(rig, s3_image, network=public, options=["-p", "127.0.0.1::5000"], prefix="rig-s3")
        )
        rig.docker("network", "connect", "--alias", "s3", net, s3.name)
        s3_port = s3.published(5000)[1]
        wait_until(lambda: _s3_answers(s3_port), "the S3 server answers", 60)
        client = s3_client(s3_port)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        server_files = [
            File(postgres.PASSWORD_FILE, PASSWORD, owner=POSTGRES_UID),
            *pgbackrest_files(POSTGRES_UID, settings),
        ]
        server_options = [
            *data,
            *("-v", f"{names['spool']}:{postgres.SPOOL_DIR}", "--network-alias", postgres.HOSTNAME),
            *("-e", f"POSTGRES_USER={USER}", "-e", f"POSTGRES_DB={DATABASE}"),
            *(
                "-e",
                f"POSTGRES_PASSWORD_FILE={postgres.PASSWORD_FILE}",
                "-e",
                "POSTGRES_HOST_AUTH_METHOD=scram-sha-256",
            ),
            *("-e", "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256", "-e", f"PGDATA={postgres.PGDATA}"),
            *(f"--health-cmd={postgres.HEALTH_COMMAND}", "--health-interval=30s", "--health-start-period=60s"),
            *("--health-start-interval=1s", "--shm-size=256m", "--stop-timeout=60"),
        ]
        server = stack.enter_context(
            container(
                rig,
                server_image,
                *server_command(archive_timeout_seconds),
                network=net,
                options=server_options,
                files=server_files,
                prefix="rig-postgres",
            )
        )
        server.wait_for("healthy", timeout=120)
        # The program's pgBackRest job, in the server's image, with its volumes and files.
        job_env = ["-e", f"STANZA={pitr.STANZA}", "-e", f"CONFIG_FILE={pitr.CONFIG_FILE}"]
        job_env += ["-e", f"SECRETS_DIR={pitr.SECRETS_DIR}"]
        run_job(
            rig,
            server_image,
            STANZA_JOB_SCRIPT,
            net=net,
            options=[*data, "-v", f"{names['spool']}:{postgres.SPOOL_DIR}", *job_env],
            files=pgbackrest_files(POSTGRES_UID, settings),
        )
        runner_options = [*data, "-v", f"{names['state']}:{runner_component.STATE_DIR}", "--entrypoint", "sleep"]
        runner_options += [arg for key, value in runner_env().items() for arg in ("-e", f"{key}={value}")]
        runner = stack.enter_context(
            container(rig, runner_image, "infinity", network=net, options=runner_options, files=runner_files(settings))
        )
        yield BackupStack(rig, net, s3, server, runner, s3_port, names)


def _s3_answers(port: int) -> bool:
    try:
        s3_client(port).list_buckets()
    except Exception:  # noqa: BLE001 - not up yet, whatever the error
        return False
    return True


def wait_until(condition: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RigError(f"{what}: not within {timeout:g} s")
        time.sleep(0.2)
