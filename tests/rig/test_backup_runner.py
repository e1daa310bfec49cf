"""The backup runner's container against the program's PostgreSQL 17 container and an S3 server
(moto), all real, on the rig: a logical backup, its restore drill, WAL archiving through
pgBackRest 2.55, the weekly PITR drill, and a restore to a moment before a destructive change."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from harness.docker_rig.backup_stack import BUCKET, DATABASE, USER, BackupStack, backup_stack, wait_until
from harness.docker_rig.engine import Rig
from harness.docker_rig.images import RigImages
from runner.pitr_drill import standby_options

EVENTS = 5000


@pytest.fixture(scope="module")
def stack(docker_rig: Rig, rig_images: RigImages) -> Iterator[BackupStack]:
    with backup_stack(docker_rig, rig_images) as running:
        running.sql(
            "CREATE TABLE audit_events (id bigint PRIMARY KEY, actor text NOT NULL, at timestamptz NOT NULL);"
            f" INSERT INTO audit_events SELECT g, 'user-' || (g % 97), now() FROM generate_series(1, {EVENTS}) g"
        )
        yield running


def printed(out: str) -> dict[str, Any]:
    """The JSON object the runner prints first (its log lines follow on stderr)."""
    value, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])
    return value


def test_a_backup_streams_a_dump_and_its_manifest_into_the_bucket(stack: BackupStack) -> None:
    code, out = stack.runner_cli("postgres")
    assert code == 0, out
    manifest = printed(out)
    assert manifest["server_version"].startswith("17.")
    assert manifest["database"] == DATABASE
    key = manifest["key"]
    assert key.startswith(f"daily/postgres/{DATABASE}/") and key in stack.keys("daily/")
    body = stack.s3_client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest["sha256"]
    assert len(body) == manifest["size_bytes"] and body.startswith(b"PGDMP")  # pg_dump's custom format


def test_the_restore_drill_restores_the_latest_backup_and_compares_it_with_the_database(stack: BackupStack) -> None:
    code, out = stack.runner_cli("postgres")
    assert code == 0, out
    latest = printed(out)["key"]
    code, out = stack.runner_cli("verify")
    assert code == 0, out
    drill = printed(out)
    assert drill["key"] == latest
    assert (drill["ok"], drill["checksum_ok"], drill["tables_checked"], drill["mismatches"]) == (True, True, 1, {})


def test_every_wal_segment_reaches_the_repository(stack: BackupStack) -> None:
    stack.sql(f"INSERT INTO audit_events SELECT g, 'wal', now() FROM generate_series({EVENTS + 1}, {EVENTS + 100}) g")
    segment = stack.sql("SELECT pg_walfile_name(pg_switch_wal())")
    archived = lambda: stack.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= segment  # noqa: E731
    wait_until(archived, f"{segment} archived", 120)
    assert stack.sql("SELECT failed_count FROM pg_stat_archiver") == "0"
    assert [key for key in stack.keys("pgbackrest/archive/audit-x/17-1/") if f"/{segment}-" in key], segment
    stack.sql(f"DELETE FROM audit_events WHERE id > {EVENTS}")


def test_the_pitr_drill_restores_to_a_fresh_restore_point_and_reads_every_table(stack: BackupStack) -> None:
    code, out = stack.runner_cli("pitr-backup", "full")
    assert code == 0, out
    code, out = stack.runner_cli("pitr-drill")
    assert code == 0, out
    result = printed(out)
    assert result["tables"] >= 1 and result["rows"] >= EVENTS, result


def test_a_restore_to_a_moment_brings_back_what_a_later_delete_removed(stack: BackupStack) -> None:
    assert stack.runner_cli("pitr-backup", "full")[0] == 0
    before = int(stack.sql("SELECT count(*) FROM audit_events"))
    moment = stack.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')")
    time.sleep(1.1)
    stack.sql("DELETE FROM audit_events WHERE id % 7 = 0")
    after = int(stack.sql("SELECT count(*) FROM audit_events"))
    assert after < before
    segment = stack.sql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_until(
        lambda: stack.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= segment, "archived", 120
    )
    scratch = "/var/lib/audit-x-backup/restore-to-a-moment"
    code, out = stack.runner_cli(
        "pitr-restore", "--to", datetime.fromisoformat(moment).isoformat(), "--scratch", scratch
    )
    assert code == 0, out
    assert printed(out)["target"] == "time"
    # The restored directory, started beside the live server in the runner's container (private
    # socket, no TCP, no archiving), reads as the database read at that moment.
    controldata = stack.runner.exec("pg_controldata", scratch)[1]
    options = f"-p 5498 -k {scratch} -c listen_addresses='' -c archive_mode=off {standby_options(controldata)}"
    code, out = stack.runner.exec("pg_ctl", "-D", scratch, "-o", options, "-l", f"{scratch}.log", "-w", "start")
    assert code == 0, out
    try:
        psql = ("psql", "--no-psqlrc", "-h", scratch, "-p", "5498", "-U", USER, "-d", DATABASE, "-tAc")
        wait_until(lambda: stack.runner.exec(*psql, "SELECT pg_is_in_recovery()")[1].strip() == "f", "promoted", 120)
        assert stack.runner.exec(*psql, "SELECT count(*) FROM audit_events")[1].strip() == str(before)
    finally:
        stack.runner.exec("pg_ctl", "-D", scratch, "-m", "immediate", "stop")
        stack.runner.exec("rm", "-rf", scratch)
