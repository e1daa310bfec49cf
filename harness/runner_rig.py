"""The backup runner's test rig: real PostgreSQL and an S3 API (moto's server) on loopback.

A realistic audit-log data set is built once per session; each test makes its own bucket and
runs the runner's real commands (`runner.cli.main`) with an injected clock. The runner logs in as
the program's stacks have it do: as the app's login, which acts as the owner role and is no
superuser (the program's logins job, components/data/postgres_logins.sh, makes both here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from components.data.postgres import LOGINS_JOB_SCRIPT, login_role, owner_role
from harness import audit_dataset
from harness.local_services import (
    InfluxWrites,
    PostgresCluster,
    influx_write_recorder,
    postgres_bindir,
    postgres_cluster,
    run_logins_job,
    s3_server,
)
from runner.cli import main

DATABASE = "audit_x_test"
PASSWORD = "BackupTestPassword0123456789abcdefghij"
LOGIN = login_role("audit_x", "a")
OWNER = owner_role("audit_x")
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # a Wednesday


@dataclass
class Rig:
    pg: PostgresCluster
    s3_endpoint: str
    influx: InfluxWrites
    env: dict[str, str]
    tmp: Path
    bucket_counter: int = 0

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="eu-west-1")

    def new_bucket(self, *, object_lock: bool = False) -> str:
        """A fresh, versioned bucket per test (tests never see each other's backups), with Object
        Lock enabled as components/backups/bucket.py does it: on the existing bucket, no default."""
        self.bucket_counter += 1
        name = f"audit-x-test-{self.bucket_counter}"
        client = self.s3()
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if object_lock:
            client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        response = self.s3().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in response.get("Contents", []))

    def dsn(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.pg.port} user={LOGIN} dbname={database}"

    def count(self, table: str, database: str = DATABASE) -> int:
        with psycopg.connect(self.dsn(database), password=PASSWORD) as connection:
            row = connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            return int(row[0]) if row else -1

    def create_database(self, name: str) -> None:
        self.pg.psql(f"CREATE DATABASE {name} OWNER {OWNER}")


def app_database(pg: PostgresCluster, tmp: Path) -> None:
    """The app's database on `pg` as a stack has it: `audit_x` standing in for the image's
    bootstrap superuser, the owner role and the login LOGIN (password PASSWORD) made by the
    program's logins job."""
    pg.psql("CREATE ROLE audit_x LOGIN SUPERUSER")
    pg.psql(f"CREATE DATABASE {DATABASE} OWNER audit_x")
    secrets_dir = tmp / f"logins-{pg.port}"
    secrets_dir.mkdir()
    job_env = {"POSTGRES_USER": "audit_x", "POSTGRES_DB": DATABASE, "OWNER_ROLE": OWNER}
    made = run_logins_job(pg, LOGINS_JOB_SCRIPT, job_env, {LOGIN: PASSWORD}, secrets_dir)
    if made.returncode != 0:
        raise RuntimeError(f"the logins job failed: {made.stderr}")


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("backup")
    with (
        pytest.MonkeyPatch.context() as patch,
        postgres_cluster() as pg,
        s3_server() as endpoint,
        influx_write_recorder() as influx,
    ):
        # The runner calls pg_dump and pg_restore: the server's own version, as in its image.
        patch.setenv("PATH", f"{postgres_bindir()}:{os.environ['PATH']}")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        app_database(pg, tmp)
        audit_dataset.build(f"host=127.0.0.1 port={pg.port} user={LOGIN} dbname={DATABASE}", 80, password=PASSWORD)
        (tmp / "pgpassword").write_text(PASSWORD)
        (tmp / "influx-token").write_text("influx-test-token")
        env = {
            "BACKUP_ENVIRONMENT": "test",
            "AWS_REGION": "eu-west-1",
            "S3_ENDPOINT_URL": endpoint,
            "BACKUP_PART_SIZE_MB": "5",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg.port),
            "PGUSER": LOGIN,
            "PGDATABASE": DATABASE,
            "PGPASSWORD_FILE": str(tmp / "pgpassword"),
            "INFLUX_URL": influx.url,
            "INFLUX_ORG": "audit-x",
            "INFLUX_METRICS_BUCKET": "metrics",
            "INFLUX_TOKEN_FILE": str(tmp / "influx-token"),
            "BACKUP_SCHEDULE_INFLUXDB": "off",
        }
        yield Rig(pg=pg, s3_endpoint=endpoint, influx=influx, env=env, tmp=tmp)


def run(
    rig: Rig, bucket: str, *argv: str, now: datetime = DAY, env: Mapping[str, str] | None = None, **overrides: str
) -> int:
    """The runner's real command line, on `bucket`, with the rig's environment, `env` and `overrides`."""
    state_dir = rig.tmp / f"state-{bucket}"
    env = {**rig.env, "BACKUP_BUCKET": bucket, "BACKUP_STATE_DIR": str(state_dir), **(env or {}), **overrides}
    return main(list(argv), clock=lambda: now, env=env)


def metric_lines(rig: Rig, kind: str, outcome: str) -> list[str]:
    return [line for line in rig.influx.lines if f"kind={kind}," in line and f"outcome={outcome}" in line]
