"""Backups nobody can destroy early: S3 Object Lock and retention by count, against moto's S3 server.

The runner writes to a bucket with Object Lock enabled the way components/backups/bucket.py
enables it. Clocks are set ahead of the real time: S3 (and moto) judge a lock by the real clock.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pytest

from harness.local_services import free_port
from harness.runner_rig import PASSWORD, Rig, run

pytestmark = pytest.mark.services

SMALL_DATABASE = "audit_x_small"
SPANS = {"daily": timedelta(days=7), "weekly": timedelta(days=28), "monthly": timedelta(days=372)}


def soon() -> datetime:
    """02:00 UTC on a day after today: every lock the runner sets is in the real future."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=2, minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def small(rig: Rig) -> str:
    """A small database: these tests are about the copies, not the dump."""
    rig.create_database(SMALL_DATABASE)
    with_password = f"{rig.dsn(SMALL_DATABASE)} password={PASSWORD}"
    import psycopg  # noqa: PLC0415

    with psycopg.connect(with_password) as connection:
        connection.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text NOT NULL)")
        connection.execute("INSERT INTO events (body) SELECT 'event ' || n FROM generate_series(1, 500) n")
    return SMALL_DATABASE


def backup(rig: Rig, bucket: str, now: datetime, mode: str = "COMPLIANCE", **overrides: str) -> int:
    return run(
        rig, bucket, "postgres", now=now, env={"PGDATABASE": SMALL_DATABASE, "BACKUP_LOCK_MODE": mode, **overrides}
    )


def release(rig: Rig, bucket: str, now: datetime, **overrides: str) -> int:
    """`python -m runner release`, as an operator off the host runs it."""
    return run(rig, bucket, "release", now=now, env={"PGDATABASE": SMALL_DATABASE, **overrides})


def lock_of(rig: Rig, bucket: str, key: str, version: str | None = None) -> tuple[str, datetime]:
    extra = {"VersionId": version} if version else {}
    head = rig.s3().head_object(Bucket=bucket, Key=key, **extra)
    return head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]


def tags_of(rig: Rig, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in rig.s3().get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def copies(rig: Rig, bucket: str, tier: str) -> list[str]:
    return [k for k in rig.keys(bucket, f"{tier}/postgres/{SMALL_DATABASE}/") if k.endswith(".dump")]


def test_every_copy_and_its_manifest_is_locked_for_its_tier(rig: Rig, small: str) -> None:
    bucket = rig.new_bucket(object_lock=True)
    now = soon()
    assert backup(rig, bucket, now) == 0
    for tier, span in SPANS.items():  # the first backup of a bucket is its week's and month's first
        (data,) = copies(rig, bucket, tier)
        manifest = data.replace(".dump", ".manifest.json")
        assert lock_of(rig, bucket, data) == ("COMPLIANCE", now + span)
        assert lock_of(rig, bucket, manifest) == ("COMPLIANCE", now + span)


def test_an_overwrite_keeps_the_locked_version_and_a_locked_version_cannot_be_deleted(rig: Rig, small: str) -> None:
    bucket = rig.new_bucket(object_lock=True)
    assert backup(rig, bucket, soon()) == 0
    (key,) = copies(rig, bucket, "daily")
    s3 = rig.s3()
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=b"ransom note")  # what a stolen key could do
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    locked = next(v for v in versions if not v["IsLatest"])
    kept = s3.get_object(Bucket=bucket, Key=key, VersionId=locked["VersionId"])["Body"].read()
    assert hashlib.sha256(kept).digest() == hashlib.sha256(original).digest()
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=locked["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key=key, VersionId=locked["VersionId"])["Body"].read() == original


def test_governance_mode_holds_unless_someone_bypasses_it_on_purpose(rig: Rig, small: str) -> None:
    bucket = rig.new_bucket(object_lock=True)
    assert backup(rig, bucket, soon(), mode="GOVERNANCE") == 0
    (key,) = copies(rig, bucket, "daily")
    s3 = rig.s3()
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    assert lock_of(rig, bucket, key)[0] == "GOVERNANCE"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    # Staging's escape hatch: an administrator with s3:BypassGovernanceRetention (never the host).
    s3.delete_object(Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True)
    assert key not in rig.keys(bucket, "daily/")


def test_a_week_of_failed_runs_keeps_the_newest_seven_daily_copies(rig: Rig, small: str) -> None:
    bucket = rig.new_bucket(object_lock=True)
    start = soon()
    for day in range(8):
        assert backup(rig, bucket, start + timedelta(days=day)) == 0
    # The eighth copy makes the first one surplus, and its lock ran out that morning: the runner on
    # the host leaves it (its writer may not tag), `release` off the host frees it.
    first = copies(rig, bucket, "daily")[0]
    assert tags_of(rig, bucket, first) == {}
    assert release(rig, bucket, start + timedelta(days=7)) == 0
    assert tags_of(rig, bucket, first) == {"audit-x-retention": "released"}
    unreachable = str(free_port())
    for day in range(8, 15):  # PostgreSQL is down for a week: every run fails
        assert backup(rig, bucket, start + timedelta(days=day), PGPORT=unreachable) == 1
    now = start + timedelta(days=14)
    newest_first = sorted(copies(rig, bucket, "daily")[1:], reverse=True)
    assert len(newest_first) == 7
    for rank, key in enumerate(newest_first):
        taken = start + timedelta(days=7 - rank)
        assert now - taken >= timedelta(days=7)  # an age-based rule would have expired each one
        assert lock_of(rig, bucket, key) == ("COMPLIANCE", now + timedelta(days=7 - rank))
        assert lock_of(rig, bucket, key.replace(".dump", ".manifest.json"))[1] == now + timedelta(days=7 - rank)
        assert tags_of(rig, bucket, key) == {}
    # The first weekly and monthly copies are within their count: kept, never released.
    for tier in ("weekly", "monthly"):
        assert all(tags_of(rig, bucket, key) == {} for key in copies(rig, bucket, tier))


def test_a_surplus_copy_still_locked_is_not_released_yet(rig: Rig, small: str) -> None:
    bucket = rig.new_bucket(object_lock=True)
    start = soon()
    # Two runs a day apart, with a count of one: the older copy is surplus at the second run,
    # but locked until a day after it was taken, which is exactly then.
    overrides: dict[str, Any] = {"BACKUP_DAILY_COPIES": "1"}
    assert backup(rig, bucket, start, **overrides) == 0
    assert backup(rig, bucket, start + timedelta(hours=12), **overrides) == 0
    older = copies(rig, bucket, "daily")[0]
    assert release(rig, bucket, start + timedelta(hours=12), **overrides) == 0
    assert tags_of(rig, bucket, older) == {}  # surplus, but its lock holds until start + 1 day
    assert backup(rig, bucket, start + timedelta(days=1), **overrides) == 0
    assert tags_of(rig, bucket, older) == {}  # the runner on the host never releases
    assert release(rig, bucket, start + timedelta(days=1), **overrides) == 0
    assert tags_of(rig, bucket, older) == {"audit-x-retention": "released"}
