"""Point-in-time recovery (runner/pitr.py) against real servers on loopback: PostgreSQL 15
archiving through pgBackRest (Debian's) to moto's S3 server, behind a TLS terminator (nginx),
as pgBackRest's S3 client needs TLS. The repository is encrypted by pgBackRest; the config is
the one the module renders, secrets in their own include file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import psycopg
import pytest

from harness.local_services import postgres_bindir
from harness.pitr_rig import ACCESS_KEY, BUCKET, PASSPHRASE, SECRET_KEY, Rig, pitr_rig, restored
from runner import cli, pitr

pytestmark = pytest.mark.services

QUEUE_MAX_MB = 64


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with pitr_rig(queue_max_mb=QUEUE_MAX_MB) as rig:
        yield rig


def test_restore_to_a_time_between_two_writes_brings_back_what_came_before_and_not_the_delete(rig: Rig) -> None:
    rig.sql("CREATE TABLE events (id int PRIMARY KEY, body text)")
    rig.sql("INSERT INTO events SELECT n, 'e' || n FROM generate_series(1, 1000) n")
    time.sleep(1.1)
    target = rig.now()
    time.sleep(1.1)
    rig.sql("DELETE FROM events WHERE id > 10")  # the erroneous DELETE at 15:02
    rig.pgbackrest.backup("diff")
    rig.archived_through()
    info = rig.pgbackrest.info()
    kinds = [b["type"] for b in pitr.backups(info)]
    assert kinds[-2:] == ["full", "diff"]
    full, diff = pitr.last_backup_stop(info, "full"), pitr.last_backup_stop(info, "diff")
    assert full is not None and diff is not None and diff >= full
    with restored(rig, pitr.Target.time(target)) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (1000,)
    assert rig.sql("SELECT count(*) FROM events") == "10"  # prod was not touched


def test_restore_to_the_latest_and_to_a_restore_point(rig: Rig) -> None:
    rig.sql("CREATE TABLE releases (version text); INSERT INTO releases VALUES ('1.4.2')")
    with psycopg.connect(
        host=str(rig.pg.datadir), port=rig.pg.port, user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        pitr.create_restore_point(connection, "before-1.5.0")
    rig.sql("DROP TABLE releases")  # a migration gone wrong
    rig.sql("CREATE TABLE after_release (id int); INSERT INTO after_release VALUES (1)")
    rig.archived_through()
    with restored(rig, pitr.Target.name("before-1.5.0")) as connection:
        assert connection.execute("SELECT version FROM releases").fetchall() == [("1.4.2",)]
        assert connection.execute("SELECT to_regclass('after_release')").fetchone() == (None,)
    with restored(rig, pitr.Target.latest()) as connection:
        assert connection.execute("SELECT to_regclass('releases')").fetchone() == (None,)
        assert connection.execute("SELECT count(*) FROM after_release").fetchone() == (1,)


def ready_segments(rig: Rig) -> list[str]:
    status = rig.pg.datadir / "pg_wal" / "archive_status"
    return sorted(p.name for p in status.iterdir() if p.name.endswith(".ready"))


def archiver(rig: Rig) -> pitr.ArchiverStatus:
    with psycopg.connect(host=str(rig.pg.datadir), port=rig.pg.port, user="postgres", dbname="postgres") as connection:
        return pitr.archiver_status(connection)


def test_s3_down_archiving_fails_nothing_is_lost_and_it_catches_up(rig: Rig) -> None:
    rig.sql("CREATE TABLE during_outage (id int)")
    assert rig.tls is not None
    tls = rig.tls
    before = archiver(rig)
    tls.stop()  # S3 unreachable
    try:
        for n in range(3):
            rig.sql(f"INSERT INTO during_outage VALUES ({n}); SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        while archiver(rig).failed_count == before.failed_count:
            assert time.monotonic() < deadline, "archiving never reported a failure"
            time.sleep(0.5)
        during = archiver(rig)
        assert during.failing and during.segments_waiting >= 1  # what the pitr-archiving alert reads
        waiting = ready_segments(rig)
        assert len(waiting) >= 1  # the WAL waits in pg_wal, well within the queue's cap
        assert len(waiting) * 16 <= QUEUE_MAX_MB
        assert rig.sql("SELECT count(*) FROM during_outage") == "3"  # writes went on
    finally:
        tls.start()  # S3 is back
    deadline = time.monotonic() + 120
    while ready_segments(rig):
        assert time.monotonic() < deadline, f"archiving did not catch up: {ready_segments(rig)}"
        time.sleep(0.5)
    after = archiver(rig)
    assert not after.failing and after.archived_count > before.archived_count
    assert after.segments_waiting == 0
    rig.archived_through()
    with restored(rig, pitr.Target.latest()) as connection:
        assert connection.execute("SELECT count(*) FROM during_outage").fetchone() == (3,)


def test_the_config_holds_no_secret_and_the_secrets_file_holds_only_them(rig: Rig) -> None:
    plain = rig.config.read_text()
    for secret in (ACCESS_KEY, SECRET_KEY, PASSPHRASE):
        assert secret not in plain
    assert "repo1-cipher-type=aes-256-cbc" in plain and "archive-push-queue-max=64MiB" in plain
    secrets = (rig.work / "conf.d" / "secrets.conf").read_text().splitlines()
    assert [line.split("=", 1)[0] for line in secrets[1:]] == list(pitr.SECRET_OPTIONS)
    assert oct((rig.work / "conf.d" / "secrets.conf").stat().st_mode & 0o777) == "0o400"
    # The repository is encrypted: no file of it, info files and manifests included, holds a
    # path or table name in plain text (an unencrypted manifest lists pg_data/ and its tables).
    s3 = boto3.client("s3", endpoint_url=rig.s3_endpoint, region_name="eu-west-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pgbackrest/")["Contents"]]
    assert any(k.endswith("backup.manifest") for k in keys) and any("/archive/" in k for k in keys)
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert b"pg_data" not in body and b"PG_VERSION" not in body and b"pg_catalog" not in body, key


def test_a_corrupted_file_in_the_repository_fails_verify(rig: Rig) -> None:
    rig.pgbackrest.verify()  # clean first
    s3 = boto3.client("s3", endpoint_url=rig.s3_endpoint, region_name="eu-west-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pgbackrest/archive/")["Contents"]]
    victim = next(k for k in keys if "/0000" in k and k.endswith(".zst"))
    original = s3.get_object(Bucket=BUCKET, Key=victim)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=victim, Body=bytes(flipped))
    try:
        with pytest.raises(pitr.PitrError, match="verify"):
            rig.pgbackrest.verify()
    finally:
        s3.put_object(Bucket=BUCKET, Key=victim, Body=original)
    rig.pgbackrest.verify()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def runner(rig: Rig, *argv: str) -> Ran:
    """`python -m runner ...`'s main, as the runner's container runs it; only pgBackRest itself
    is run as the database's user (in the container, everything is)."""
    password = rig.work / "pgpassword"
    if not password.exists():
        rig.sql("ALTER ROLE postgres PASSWORD 'pitr-runner-password'")
        password.write_text("pitr-runner-password")
    env = {
        "BACKUP_ENVIRONMENT": "test",
        "BACKUP_BUCKET": BUCKET,
        "AWS_REGION": "eu-west-1",
        "BACKUP_STATE_DIR": str(rig.work / f"state-{time.monotonic_ns()}"),
        "BACKUP_SCHEDULE_INFLUXDB": "off",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(rig.pg.port),
        "PGUSER": "postgres",
        "PGDATABASE": "postgres",
        "PGPASSWORD_FILE": str(password),
        "PITR_CONFIG_FILE": str(rig.config),
        "PITR_SECRETS_DIR": str(rig.work / "conf.d"),
        "PITR_PG_SOCKET": str(rig.pg.datadir),
    }
    out, err = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        patch.setattr(cli, "pgbackrest", lambda config: rig.pgbackrest)
        patch.setenv("PATH", f"{postgres_bindir()}:{os.environ['PATH']}")  # pg_ctl, pg_amcheck
        code = cli.main(list(argv), env=env)
    return Ran(code, out.getvalue(), err.getvalue())


def test_the_runners_commands_back_up_restore_to_a_scratch_directory_and_report(rig: Rig) -> None:
    rig.sql("CREATE TABLE runner_rows (id int); INSERT INTO runner_rows SELECT generate_series(1, 42)")
    backup = runner(rig, "pitr-backup", "diff")
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["type"] == "diff"
    rig.archived_through()
    scratch = rig.owned_dir("runner-scratch")
    restore = runner(rig, "pitr-restore", "--to-latest", "--scratch", str(scratch))
    assert restore.returncode == 0, restore.stderr
    assert (scratch / "PG_VERSION").read_text().strip() == "15"
    status = json.loads(runner(rig, "pitr-status").stdout)
    assert status["archiving"]["failed_count"] >= 0 and status["archiving"]["archived_count"] > 0
    assert status["age_hours"]["diff"] is not None and status["age_hours"]["diff"] < 1
    # In place while PostgreSQL runs: refused, nothing touched.
    refused = runner(rig, "pitr-restore", "--to-latest", "--in-place")
    assert refused.returncode == 1 and "PostgreSQL is running: stop it first" in refused.stderr
    # A time without a zone is refused rather than guessed.
    vague = runner(rig, "pitr-restore", "--to", "2026-11-29T15:01:30", "--scratch", str(scratch))
    assert vague.returncode == 1 and "give the time zone" in vague.stderr


def test_the_archiving_metric_is_what_the_alert_reads() -> None:
    from runner.metrics import archiving_line  # noqa: PLC0415

    stuck = pitr.ArchiverStatus(
        7, "000000010000000000000005", 100.0, 3, "000000010000000000000006", 160.0, "00000001000000000000000A"
    )
    assert stuck.failing and stuck.segments_waiting == 4
    assert archiving_line("prod", stuck, 400.0) == (
        "audit_x_pitr,environment=prod archived_count=7i,failed_count=3i,failing=1i,segments_waiting=4i,"
        "last_archived_age_s=300.0 400"
    )
    idle = pitr.ArchiverStatus(7, "0000000100000000000000FF", 100.0, 0, None, None, "000000010000000100000000")
    assert not idle.failing and idle.segments_waiting == 0  # across a log id boundary: the next one


def test_the_weekly_drill_restores_to_a_fresh_restore_point_checks_and_cleans_up(rig: Rig) -> None:
    rig.sql("CREATE TABLE drilled (id int PRIMARY KEY); INSERT INTO drilled SELECT generate_series(1, 300)")
    ran = runner(rig, "pitr-drill")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["target"].startswith("pitr-drill-")
    assert result["tables"] >= 1 and result["rows"] >= 300
    assert not list(rig.work.glob("state-*/pitr-drill"))  # the scratch server and its files are gone
    log = (rig.pg.datadir.parent / "server.log").read_text()
    assert f'restore point "{result["target"]}" created' in log


def test_a_corrupted_wal_file_makes_the_drill_fail_loudly(rig: Rig) -> None:
    s3 = boto3.client("s3", endpoint_url=rig.s3_endpoint, region_name="eu-west-1")
    rig.sql("CREATE TABLE before_damage (id int)")
    rig.archived_through()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="pgbackrest/archive/")["Contents"])
    victim = [k for k in keys if k.endswith(".zst")][-1]  # the newest segment: a restore needs it
    original = s3.get_object(Bucket=BUCKET, Key=victim)["Body"].read()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=victim, Body=bytes(damaged))
    try:
        ran = runner(rig, "pitr-drill")
        assert ran.returncode == 1
        assert "pitr-drill failed:" in ran.stderr
    finally:
        s3.put_object(Bucket=BUCKET, Key=victim, Body=original)


def expire_as_if(rig: Rig, offset: str) -> None:
    """pgBackRest's expire with its clock moved (libfaketime): its time-based retention reads the
    real clock, and nothing else here can make a backup days old."""
    argv = rig.pgbackrest.as_database_user(["faketime", offset, "pgbackrest", *rig.pgbackrest.config])
    subprocess.run([*argv, f"--stanza={pitr.STANZA}", "expire"], check=True, capture_output=True, timeout=120)


def test_expire_keeps_exactly_the_window() -> None:
    """retentionDays 7: every backup needed to restore to any moment of the last 7 days stays, so
    the newest full older than the window stays too; what only restores to before it goes."""
    with pitr_rig() as rig:  # its own stanza: this one's backups are made old on purpose
        rig.pgbackrest.backup("full")  # a second full, seconds after the rig's first
        rig.pgbackrest.backup("diff")
        first, second = [b["label"] for b in pitr.backups(rig.pgbackrest.info()) if b["type"] == "full"]
        expire_as_if(rig, "+6 days")  # inside the window: nothing goes
        assert [b["label"] for b in pitr.backups(rig.pgbackrest.info())][:2] == [first, second]
        expire_as_if(rig, "+8 days")  # both fulls are now older than the window
        kept = pitr.backups(rig.pgbackrest.info())
        assert [b["label"] for b in kept if b["type"] == "full"] == [second]  # the window's start needs it
        assert [b["type"] for b in kept] == ["full", "diff"]  # and its differential
        # The WAL goes with the backups: the archive starts where the kept full began.
        info = rig.pgbackrest.info()
        second_full = next(b for b in info["backup"] if b["label"] == second)
        assert info["archive"][0]["min"] == second_full["archive"]["start"]
