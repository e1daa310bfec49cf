"""Grandfather-father-son placement, on week and month boundaries, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.cli import next_run
from runner.config import ConfigError, Schedule, load
from runner.layout import BackupKey, key_from_manifest, promotions, stamp


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_first_backup_ever_goes_to_every_tier() -> None:
    assert promotions(at("2026-11-25T02:00:00"), [], []) == ["weekly", "monthly"]


def test_second_backup_of_the_week_and_month_stays_daily() -> None:
    assert promotions(at("2026-11-26T02:00:00"), [at("2026-11-25T02:00:00")], [at("2026-11-25T02:00:00")]) == []


def test_monday_starts_a_new_iso_week() -> None:
    sunday, monday = at("2026-11-29T02:00:00"), at("2026-11-30T02:00:00")
    assert promotions(monday, [sunday], [sunday]) == ["weekly"]


def test_first_of_the_month_mid_week_is_monthly_only() -> None:
    monday, tuesday_first = at("2026-11-30T02:00:00"), at("2026-12-01T02:00:00")
    assert promotions(tuesday_first, [monday], [at("2026-11-02T02:00:00")]) == ["monthly"]


def test_iso_week_spanning_new_year() -> None:
    # 2026-12-31 (Thursday) and 2027-01-01 (Friday) are both in ISO week 53 of 2026.
    thursday, friday = at("2026-12-31T02:00:00"), at("2027-01-01T02:00:00")
    assert promotions(friday, [thursday], [thursday]) == ["monthly"]


def test_a_missed_first_run_is_made_up_by_the_next_success() -> None:
    # Monday's run failed, so Tuesday's is the week's first complete backup.
    last_week = at("2026-11-27T02:00:00")
    assert promotions(at("2026-12-01T02:00:00"), [last_week], [last_week]) == ["weekly", "monthly"]


def test_keys_round_trip_through_manifest_names() -> None:
    key = BackupKey("daily", "postgres", "audit_x_prod", stamp(at("2026-11-28T02:00:05")), "dump")
    assert key.data == "daily/postgres/audit_x_prod/2026-11-28T020005Z.dump"
    assert key.manifest == "daily/postgres/audit_x_prod/2026-11-28T020005Z.manifest.json"
    assert key_from_manifest(key.manifest, "dump") == key
    assert key.in_tier("monthly").data == "monthly/postgres/audit_x_prod/2026-11-28T020005Z.dump"


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("02:00", "2026-11-28T01:59:00", "2026-11-28T02:00:00"),
        ("02:00", "2026-11-28T02:00:00", "2026-11-29T02:00:00"),
        ("sun 04:00", "2026-11-28T12:00:00", "2026-11-29T04:00:00"),
        ("sun 04:00", "2026-11-29T04:00:00", "2026-12-06T04:00:00"),
    ],
)
def test_next_run(schedule: str, after: str, expected: str) -> None:
    assert next_run(Schedule.parse("S", schedule), at(after)) == at(expected)


def test_bad_runner_config_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"BACKUP_SCHEDULE_VERIFY='sunday': expected HH:MM"):
        load(
            {
                "PGPASSWORD": "x",
                "BACKUP_ENVIRONMENT": "t",
                "BACKUP_BUCKET": "b",
                "AWS_REGION": "eu-west-1",
                "PGUSER": "u",
                "PGDATABASE": "d",
                "BACKUP_SCHEDULE_VERIFY": "sunday",
            }
        )
    with pytest.raises(ConfigError, match=r"BACKUP_BUCKET is required"):
        load(
            {"PGPASSWORD": "x", "BACKUP_ENVIRONMENT": "t", "AWS_REGION": "eu-west-1", "PGUSER": "u", "PGDATABASE": "d"}
        )
