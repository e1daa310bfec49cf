"""PostgreSQL archiving through pgBackRest to a local S3 API, for the PITR tests and benchmark.

A throwaway PostgreSQL cluster archives every WAL segment with pgBackRest (Debian's) to moto's
S3 server behind a TLS terminator (nginx: pgBackRest's S3 client needs TLS), configured by
runner/pitr.py exactly as the program configures it (secrets in their own 0400 file). Or, with
`repository="posix"`, to a directory on local disk: pgBackRest's own cost, with no S3 server
sharing the machine's cores. Everything listens on loopback and is removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3
import psycopg

from harness.local_services import (
    PostgresCluster,
    TlsTerminator,
    _as_postgres_user,
    free_port,
    postgres_bindir,
    postgres_cluster,
    s3_server,
    tls_terminator,
)
from runner import pitr

BUCKET = "audit-x-pitr-test"
ACCESS_KEY, SECRET_KEY = "AKIAPITRTEST0000000", "pitr-secret-access-key-0000000000000000"
PASSPHRASE = "pitr-cipher-passphrase-0123456789abcdef"


@dataclass
class Rig:
    pg: PostgresCluster
    tls: TlsTerminator | None
    s3_endpoint: str | None
    work: Path
    config: Path
    settings: pitr.Settings

    @property
    def pgbackrest(self) -> pitr.PgBackRest:
        return pitr.PgBackRest(str(self.config), str(self.work / "conf.d"), prefix=_as_postgres_user([]))

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self.pg.psql(statement, database=database).strip()

    def archived_through(self, timeout: float = 60) -> None:
        """Force a WAL switch and wait until that segment is in the repository."""
        self.pgbackrest.run("check", timeout=timeout)

    def owned_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(mode=0o700)
        shutil.chown(path, "postgres", "postgres")
        return path

    def now(self) -> datetime:
        utc = self.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
        return datetime.fromisoformat(f"{utc}+00:00")


def as_postgres(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    shutil.chown(path, "postgres", "postgres")
    os.chmod(path, mode)


@contextlib.contextmanager
def pitr_rig(
    *, archive_timeout_seconds: int = 60, queue_max_mb: int = 64, push_timeout_seconds: int = 5, repository: str = "s3"
) -> Iterator[Rig]:
    """A cluster archiving to a stanza created and given its first full backup; yields the rig."""
    work = Path(tempfile.mkdtemp(prefix="audit-x-pitr-"))
    shutil.chown(work, "postgres", "postgres")
    config = work / "pgbackrest.conf"
    include = work / "conf.d"
    include.mkdir()
    shutil.chown(include, "postgres", "postgres")
    server = pitr.server_settings(archive_timeout_seconds, config_file=str(config), secrets_dir=str(include))
    with contextlib.ExitStack() as stack:
        endpoint, tls = None, None
        if repository == "s3":
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            endpoint = stack.enter_context(s3_server())
            tls = stack.enter_context(tls_terminator(endpoint))
            boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1").create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        pg = stack.enter_context(postgres_cluster([f"{key}='{value}'" for key, value in server.items()]))
        settings = pitr.Settings(
            repository=pitr.Repository(
                bucket=BUCKET,
                region="eu-west-1",
                endpoint="127.0.0.1",
                port=tls.port if tls else 443,
                verify_tls=False,
                path_style=True,
            ),
            retention_days=7,
            queue_max_mb=queue_max_mb,
            pg_path=str(pg.datadir),
            pg_socket_path=str(pg.datadir),
            pg_port=pg.port,
            spool_path=str(work / "spool"),
            lock_path=str(work / "lock"),
            log_path=str(work / "log"),
            archive_push_timeout_seconds=push_timeout_seconds,
        )
        for name in ("spool", "lock", "log", "repo"):
            (work / name).mkdir()
            shutil.chown(work / name, "postgres", "postgres")
        text = pitr.render_config(settings)
        if repository == "posix":
            # The same configuration but the repository's place: a directory on local disk.
            lines = [line for line in text.splitlines() if not line.startswith(("repo1-s3-", "repo1-storage-"))]
            text = "\n".join(line if line != "repo1-type=s3" else "repo1-type=posix" for line in lines) + "\n"
            text = text.replace("repo1-path=/pgbackrest", f"repo1-path={work / 'repo'}")
        as_postgres(config, text, 0o600)
        as_postgres(
            include / "secrets.conf",
            pitr.render_secrets(access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY, cipher_pass=PASSPHRASE),
            0o400,
        )
        rig = Rig(pg, tls, endpoint, work, config, settings)
        rig.pgbackrest.stanza_create()
        rig.pgbackrest.check()
        rig.pgbackrest.backup("full")
        try:
            yield rig
        finally:
            stack.close()
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def restored(
    rig: Rig,
    target: pitr.Target,
    *,
    database: str = "postgres",
    tool: pitr.PgBackRest | None = None,
    backup_set: str | None = None,
) -> Iterator[psycopg.Connection]:
    """Restore into a scratch directory, start a server there on a private socket, yield a
    connection to `database` once it has reached the target and promoted, then stop and remove it."""
    scratch = rig.owned_dir(f"restore-{time.monotonic_ns()}")
    (tool or rig.pgbackrest).restore(target, pg_path=str(scratch), backup_set=backup_set)
    port = free_port()
    options = f"-p {port} -k {scratch} -c listen_addresses='' -c archive_mode=off"
    pg_ctl = str(postgres_bindir() / "pg_ctl")
    start = [pg_ctl, "-D", str(scratch), "-o", options, "-l", str(scratch / "log"), "-w", "-t", "600", "start"]
    subprocess.run(_as_postgres_user(start), check=True, capture_output=True, timeout=660)
    try:
        try:
            # Wait for the end of recovery on `postgres`: a database created by the replay does not
            # exist yet while the server answers read-only, before the replay reaches it.
            with psycopg.connect(host=str(scratch), port=port, user="postgres", autocommit=True) as waiting:
                deadline = time.monotonic() + 600
                while waiting.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the restored server never left recovery")
                    time.sleep(0.2)
            connection = psycopg.connect(
                host=str(scratch), port=port, user="postgres", dbname=database, autocommit=True
            )
        except psycopg.Error as error:
            log = (scratch / "log").read_text(errors="replace").strip().splitlines()[-8:]
            raise RuntimeError(f"the restored server failed: {error}; its log ends:\n" + "\n".join(log)) from error
        yield connection
        connection.close()
    finally:
        stop = _as_postgres_user([pg_ctl, "-D", str(scratch), "-m", "immediate", "stop"])
        subprocess.run(stop, capture_output=True, timeout=60, check=False)  # gone already is fine
        shutil.rmtree(scratch, ignore_errors=True)
