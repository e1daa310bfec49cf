"""The backup runner against real servers on loopback: PostgreSQL, and an S3 API (moto's server).

A realistic audit-log data set is built once; each test runs the runner's real commands
(`runner.cli.main`) with an injected clock, and checks the bucket, the databases and the
metrics it wrote. Failures are injected for real: a server stopped mid-dump, an S3 endpoint
failing mid-upload, a flipped byte in a stored object.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import threading
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness import audit_dataset
from harness.local_services import FaultPlan, faulty_s3_proxy, postgres_bindir, postgres_cluster
from harness.runner_rig import DATABASE, DAY, LOGIN, PASSWORD, Rig, app_database, metric_lines, run
from runner import config as runner_config
from runner.cli import make_store, serve
from runner.jobs import PIPE_BYTES, widen_pipe
from runner.storage import BackupStore

pytestmark = pytest.mark.services


def test_backup_writes_a_complete_object_and_manifest(rig: Rig) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    daily = rig.keys(bucket, "daily/")
    assert daily == [
        "daily/postgres/audit_x_test/2026-11-25T020000Z.dump",
        "daily/postgres/audit_x_test/2026-11-25T020000Z.manifest.json",
    ]
    manifest = json.loads(rig.s3().get_object(Bucket=bucket, Key=daily[1])["Body"].read())
    obj = rig.s3().get_object(Bucket=bucket, Key=daily[0])["Body"].read()
    assert manifest["sha256"] == hashlib.sha256(obj).hexdigest()
    assert manifest["size_bytes"] == len(obj) > 5 * 1024 * 1024  # more than one part
    assert manifest["database"] == DATABASE
    assert manifest["server_version"].startswith(postgres_bindir().parent.name)
    assert manifest["row_counts"]["public.audit_events"] == rig.count("audit_events")
    assert manifest["row_counts"]["public.users"] == 2000
    assert manifest["latest_migration"] == "20250216120000"
    assert obj[:5] == b"PGDMP"  # pg_dump's custom format


def test_backup_verify_restore_round_trip(rig: Rig) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    assert run(rig, bucket, "verify") == 0
    assert metric_lines(rig, "verify", "success")

    rig.create_database("audit_x_restored")
    assert run(rig, bucket, "restore", "--target-db", "audit_x_restored") == 0
    for table in ("organizations", "users", "api_tokens", "audit_events", "schema_migrations"):
        assert rig.count(table, "audit_x_restored") == rig.count(table), table
    fingerprint = (
        "SELECT md5(string_agg(id::text || changes::text || occurred_at::text, ',' ORDER BY id)) FROM audit_events"
    )
    with (
        psycopg.connect(rig.dsn(), password=PASSWORD) as source,
        psycopg.connect(rig.dsn("audit_x_restored"), password=PASSWORD) as restored,
    ):
        assert source.execute(fingerprint).fetchone() == restored.execute(fingerprint).fetchone()
        indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_events'"
        assert restored.execute(indexes).fetchone() == source.execute(indexes).fetchone() == (4,)


def test_restore_refuses_a_non_empty_database_unless_forced(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    rig.create_database("audit_x_occupied")
    with psycopg.connect(rig.dsn("audit_x_occupied"), password=PASSWORD, autocommit=True) as connection:
        connection.execute("CREATE TABLE precious (id int)")
        connection.execute("INSERT INTO precious VALUES (1), (2)")
    assert run(rig, bucket, "restore", "--target-db", "audit_x_occupied") == 1
    assert "is not empty: refusing to overwrite it" in capsys.readouterr().err
    assert rig.count("precious", "audit_x_occupied") == 2

    assert run(rig, bucket, "restore", "--target-db", "audit_x_occupied", "--force") == 0
    assert rig.count("audit_events", "audit_x_occupied") == rig.count("audit_events")


def test_restore_a_date_picks_the_backup_of_that_day(rig: Rig) -> None:
    bucket = rig.new_bucket()
    before = rig.count("audit_events")
    assert run(rig, bucket, "postgres", now=DAY) == 0
    audit_dataset.add_events(rig.dsn(), 1000, 10_000_000, password=PASSWORD)
    assert run(rig, bucket, "postgres", now=DAY + timedelta(days=1)) == 0

    rig.create_database("audit_x_dated")
    assert run(rig, bucket, "restore", "2026-11-25", "--target-db", "audit_x_dated") == 0
    assert rig.count("audit_events", "audit_x_dated") == before
    rig.create_database("audit_x_latest")
    assert run(rig, bucket, "restore", "--target-db", "audit_x_latest") == 0
    assert rig.count("audit_events", "audit_x_latest") == before + 1000


def test_weekly_and_monthly_copies_on_boundaries(rig: Rig) -> None:
    bucket = rig.new_bucket()
    days = ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]  # Sat Sun Mon Tue Wed
    for day in days:
        assert run(rig, bucket, "postgres", now=datetime.fromisoformat(f"{day}T02:00:00+00:00")) == 0

    def dumps(tier: str) -> list[str]:
        return [k.rsplit("/", 1)[1][:10] for k in rig.keys(bucket, f"{tier}/") if k.endswith(".dump")]

    assert dumps("daily") == days
    assert dumps("weekly") == ["2026-11-28", "2026-11-30"]  # first of ISO weeks 48 and 49
    assert dumps("monthly") == ["2026-11-28", "2026-12-01"]  # first of November and December
    manifests = [k for k in rig.keys(bucket, "weekly/") if k.endswith(".manifest.json")]
    assert len(manifests) == 2


def test_status_and_healthcheck_follow_the_max_age(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "healthcheck") == 1  # nothing backed up yet
    assert run(rig, bucket, "postgres") == 0
    assert run(rig, bucket, "healthcheck", now=DAY + timedelta(hours=25)) == 0
    assert run(rig, bucket, "healthcheck", now=DAY + timedelta(hours=27)) == 1
    assert "older than 26 h" in capsys.readouterr().out
    capsys.readouterr()
    assert run(rig, bucket, "status", "--json", now=DAY + timedelta(hours=3)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["postgres"]["age_hours"] == 3.0
    assert report["postgres"]["key"] == "daily/postgres/audit_x_test/2026-11-25T020000Z.dump"


def test_success_and_failure_metrics_reach_influxdb(rig: Rig) -> None:
    bucket = rig.new_bucket()
    start = len(rig.influx.lines)
    assert run(rig, bucket, "postgres") == 0
    assert run(rig, bucket, "postgres", PGPORT="1") == 1
    lines = rig.influx.lines[start:]
    assert len(lines) == 2
    assert lines[0].startswith(
        "audit_x_backup,environment=test,kind=postgres,reason=manual,outcome=success success=1i,"
    )
    assert "outcome=failure success=0i," in lines[1]
    assert rig.influx.tokens[-1] == "Token influx-test-token"
    assert rig.influx.queries[-1] == {"org": ["audit-x"], "bucket": ["metrics"], "precision": ["s"]}


# --- failures: loud, measured, and nothing lost ----------------------------------------------


def assert_nothing_partial(rig: Rig, bucket: str, keep: list[str]) -> None:
    assert rig.keys(bucket) == keep, "only the earlier, complete backups may be there"
    assert rig.s3().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_unreachable_postgres_fails_cleanly(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    failures = len(metric_lines(rig, "postgres", "failure"))
    assert run(rig, bucket, "postgres", PGPORT="1") == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/audit_x_test" in capsys.readouterr().err
    assert len(metric_lines(rig, "postgres", "failure")) == failures + 1
    assert_nothing_partial(rig, bucket, [])


def test_server_stopped_mid_dump_aborts_the_upload(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    with postgres_cluster() as doomed:
        app_database(doomed, rig.tmp)
        audit_dataset.build(f"host=127.0.0.1 port={doomed.port} user={LOGIN} dbname={DATABASE}", 120, password=PASSWORD)
        faults = FaultPlan(on_first_part=doomed.stop)  # the server dies while pg_dump streams
        with faulty_s3_proxy(rig.s3_endpoint, faults) as proxy:
            code = run(rig, bucket, "postgres", PGPORT=str(doomed.port), S3_ENDPOINT_URL=proxy, BACKUP_PART_SIZE_MB="5")
    assert code == 1
    assert faults.parts_seen >= 1
    err = capsys.readouterr().err
    assert "postgres failed: pg_dump exited with code 1:" in err
    assert_nothing_partial(rig, bucket, [])


def test_s3_failing_mid_upload_aborts_and_keeps_earlier_backups(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres", now=DAY) == 0
    earlier = rig.keys(bucket)
    versions_before = rig.s3().list_object_versions(Bucket=bucket)["Versions"]
    faults = FaultPlan(fail_upload_parts_from=2)  # part 1 lands, then S3 keeps answering 500
    with faulty_s3_proxy(rig.s3_endpoint, faults) as proxy:
        assert run(rig, bucket, "postgres", now=DAY + timedelta(days=1), S3_ENDPOINT_URL=proxy) == 1
    assert faults.parts_failed >= 8  # botocore retried with backoff before giving up
    assert "upload to s3://" in capsys.readouterr().err
    assert_nothing_partial(rig, bucket, earlier)
    assert rig.s3().list_object_versions(Bucket=bucket)["Versions"] == versions_before


def test_transient_s3_errors_are_retried(rig: Rig) -> None:
    bucket = rig.new_bucket()
    faults = FaultPlan(transient_part_failures=3)
    with faulty_s3_proxy(rig.s3_endpoint, faults) as proxy:
        assert run(rig, bucket, "postgres", S3_ENDPOINT_URL=proxy) == 0
    assert faults.parts_failed == 3
    assert run(rig, bucket, "verify") == 0


def flip_a_byte(rig: Rig, bucket: str, key: str) -> None:
    data = bytearray(rig.s3().get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    rig.s3().put_object(Bucket=bucket, Key=key, Body=bytes(data))


def test_a_flipped_byte_fails_verify_and_restore_restores_nothing(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    dump = next(k for k in rig.keys(bucket, "daily/") if k.endswith(".dump"))
    flip_a_byte(rig, bucket, dump)
    failures = len(metric_lines(rig, "verify", "failure"))
    capsys.readouterr()
    assert run(rig, bucket, "verify") == 1
    err = capsys.readouterr().err
    assert "verify failed:" in err
    assert len(metric_lines(rig, "verify", "failure")) == failures + 1

    rig.create_database("audit_x_from_corrupt")
    assert run(rig, bucket, "restore", "--target-db", "audit_x_from_corrupt") == 1
    assert "checksum mismatch" in capsys.readouterr().err
    with psycopg.connect(rig.dsn("audit_x_from_corrupt"), password=PASSWORD) as connection:
        assert connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    # The drill's scratch databases are always dropped.
    assert "verify" not in rig.pg.psql("SELECT string_agg(datname, ',') FROM pg_database")


def test_a_wrong_checksum_in_the_manifest_fails_verify(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    manifest_key = next(k for k in rig.keys(bucket, "daily/") if k.endswith(".manifest.json"))
    manifest = json.loads(rig.s3().get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    manifest["sha256"] = "0" * 64
    rig.s3().put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())
    assert run(rig, bucket, "verify") == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_influxdb_backup_with_a_stand_in_influx(rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # There is no InfluxDB server here: a stand-in `influx` executable writes what
    # `influx backup DIR` writes (a manifest and shard files), or fails when told to.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stand_in = bindir / "influx"
    stand_in.write_text(
        "#!/bin/sh\n"
        '[ "$1" = backup ] || exit 64\n'
        '[ "$INFLUX_TOKEN" = influx-test-token ] || { echo "Error: failed to backup: 401 Unauthorized" >&2; exit 1; }\n'
        'mkdir -p "$2" && echo \'{"files":[]}\' > "$2/20261125T020000Z.manifest"\n'
        'head -c 300000 /dev/urandom > "$2/20261125T020000Z.s1.tar.gz"\n'
    )
    stand_in.chmod(0o755)
    bucket = rig.new_bucket()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        assert run(rig, bucket, "influxdb") == 0
        keys = rig.keys(bucket, "daily/influxdb/")
        assert keys == [
            "daily/influxdb/audit-x/2026-11-25T020000Z.manifest.json",
            "daily/influxdb/audit-x/2026-11-25T020000Z.tar.gz",
        ]
        manifest = json.loads(rig.s3().get_object(Bucket=bucket, Key=keys[0])["Body"].read())
        assert manifest["files"] == ["20261125T020000Z.manifest", "20261125T020000Z.s1.tar.gz"]

    other = rig.new_bucket()
    wrong_token = tmp_path / "wrong-token"
    wrong_token.write_text("not-the-operator-token")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        assert run(rig, other, "influxdb", INFLUX_TOKEN_FILE=str(wrong_token)) == 1
    assert "influx backup exited with code 1: Error: failed to backup: 401 Unauthorized" in capsys.readouterr().err
    assert rig.keys(other) == []


def test_serve_backs_up_at_start_when_stale_then_on_schedule(rig: Rig) -> None:
    """The scheduler with a fake clock: a startup backup, then 02:00 daily and the Sunday drill."""
    bucket = rig.new_bucket()
    now = [datetime(2026, 11, 28, 12, 0, tzinfo=UTC)]  # a Saturday, noon

    class ClockRanOutError(Exception):
        pass

    def sleep(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)
        if now[0] > datetime(2026, 11, 29, 12, 0, tzinfo=UTC):
            raise ClockRanOutError

    config = runner_config.load(
        {**rig.env, "BACKUP_BUCKET": bucket, "BACKUP_STATE_DIR": str(rig.tmp / f"state-{bucket}")}
    )
    with pytest.raises(ClockRanOutError):
        serve(config, make_store(config, "postgres"), make_store(config, "verify"), lambda: now[0], sleep=sleep)
    dumps = [k.rsplit("/", 1)[1] for k in rig.keys(bucket, "daily/") if k.endswith(".dump")]
    assert dumps == ["2026-11-28T120000Z.dump", "2026-11-29T020000Z.dump"]  # at start, then 02:00
    sunday_4am = int(datetime(2026, 11, 29, 4, 0, tzinfo=UTC).timestamp())
    assert [line for line in metric_lines(rig, "verify", "success") if line.endswith(f" {sunday_4am}")]
    assert run(rig, bucket, "healthcheck", now=now[0]) == 0


def test_writer_and_reader_use_their_own_profiles(rig: Rig, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[writer]\naws_access_key_id = AKIAWRITER\naws_secret_access_key = w\n"
        "[reader]\naws_access_key_id = AKIAREADER\naws_secret_access_key = r\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        patch.delenv("AWS_ACCESS_KEY_ID")
        patch.delenv("AWS_SECRET_ACCESS_KEY")
        config = runner_config.load(
            {**rig.env, "BACKUP_BUCKET": "b", "BACKUP_WRITER_PROFILE": "writer", "BACKUP_READER_PROFILE": "reader"}
        )
        used = {
            command: make_store(config, command).client._request_signer._credentials.access_key
            for command in ("postgres", "influxdb", "verify", "restore", "status")
        }
    assert used == {
        "postgres": "AKIAWRITER",
        "influxdb": "AKIAWRITER",
        "verify": "AKIAREADER",
        "restore": "AKIAREADER",
        "status": "AKIAREADER",
    }


def test_fetch_downloads_a_backup_and_refuses_a_corrupt_one(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = rig.new_bucket()
    assert run(rig, bucket, "postgres") == 0
    target = tmp_path / "latest.dump"
    capsys.readouterr()
    assert run(rig, bucket, "fetch", "postgres", "--to", str(target)) == 0
    fetched = json.loads(capsys.readouterr().out)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == fetched["sha256"]
    assert target.read_bytes()[:5] == b"PGDMP"

    flip_a_byte(rig, bucket, fetched["key"])
    corrupt = tmp_path / "corrupt.dump"
    assert run(rig, bucket, "fetch", "postgres", "--to", str(corrupt)) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert not corrupt.exists(), "a download that fails its checksum is removed"


def test_the_producers_pipe_is_widened_so_the_dump_runs_ahead() -> None:
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb", closefd=False) as stream:
            widen_pipe(stream)
        assert fcntl.fcntl(read_end, 1032) == PIPE_BYTES  # F_GETPIPE_SZ
    finally:
        os.close(read_end)
        os.close(write_end)


class _LoadingLateClient:
    """An S3 client that records what it was asked; stands in for one still loading at first."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.completed: list[int] = []

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "upload-1"}

    def upload_part(self, *, PartNumber: int, Body: bytes | bytearray, **_: Any) -> dict[str, str]:  # noqa: N803 boto3's names
        self.parts[PartNumber] = bytes(Body)
        return {"ETag": f"etag-{PartNumber}"}

    def complete_multipart_upload(self, *, MultipartUpload: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        self.completed = [part["PartNumber"] for part in MultipartUpload["Parts"]]
        return {}


def test_the_dump_is_read_on_while_the_s3_client_is_still_loading() -> None:
    """The reader fills every part buffer before the client exists: a reader waiting for the
    client would stop draining the producer's pipe, and the dump would stall meanwhile."""
    part = 5 * 1024 * 1024
    data = os.urandom(3 * part + 1234)
    client = _LoadingLateClient()
    loading: Future[Any] = Future()
    loaded_by_reader = threading.Event()

    class Producer(io.BytesIO):
        def readinto(self, buffer: Any) -> int:
            count = super().readinto(buffer)
            if self.tell() >= 3 * part and not loading.done():  # all three buffers are full
                loaded_by_reader.set()
                loading.set_result(client)
            return count

    give_up = threading.Timer(10, lambda: loading.done() or loading.set_result(client))  # never hang
    give_up.start()
    store = BackupStore(loading, "bucket", part_size=part, max_in_flight=3)
    try:
        result = store.upload_stream(
            "daily/x.dump", Producer(data), content_type="application/octet-stream", before_complete=lambda: None
        )
    finally:
        give_up.cancel()

    assert loaded_by_reader.is_set(), "the reader waited for the client before filling its buffers"
    assert client.completed == [1, 2, 3, 4]
    assert b"".join(client.parts[n] for n in client.completed) == data
    assert (result.size, result.sha256, result.parts) == (len(data), hashlib.sha256(data).hexdigest(), 4)


def test_a_pre_migration_backup_also_leaves_a_restore_point_where_pitr_is_set_up(rig: Rig) -> None:
    bucket = rig.new_bucket()
    assert (
        run(
            rig,
            bucket,
            "postgres",
            "--reason",
            "pre-migration",
            BACKUP_PITR_FULL_SCHEDULE="sun 01:00",
            BACKUP_PITR_DIFF_SCHEDULE="01:00",
            PITR_PG_SOCKET=str(rig.pg.datadir),
        )
        == 0
    )
    manifest_key = next(k for k in rig.keys(bucket, "daily/") if k.endswith(".manifest.json"))
    manifest = json.loads(rig.s3().get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest["restore_point"] == "pre-migration-2026-11-25T020000Z"
    # PostgreSQL logs every restore point it writes to the WAL.
    assert (
        'restore point "pre-migration-2026-11-25T020000Z" created' in (rig.pg.datadir.parent / "server.log").read_text()
    )
    # Without PITR, a pre-migration backup is a logical one alone.
    assert run(rig, rig.new_bucket(), "postgres", "--reason", "pre-migration") == 0
