"""The backups section: bucket retention, schedules and the runner's resources."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from components.settings.types import ConfigModel, Megabytes, Seconds
from runner import seed
from runner.config import ConfigError as RunnerConfigError
from runner.config import Schedule
from runner.storage import PART_BUFFERS

# The backup runner's memory besides its part buffers: Python, boto3 and psycopg, with a margin
# (bench/backup.py measured a peak RSS of about 110 MB with three 8 MiB parts).
RUNNER_BASE_MEMORY_MB = 128
# A full pgBackRest backup is weekly (PitrSettings checks it): restoring the window's first moment
# needs the full backup before it, up to this many days older.
FULL_BACKUP_EVERY_DAYS = 7
# pgBackRest's Debian package, from the PostgreSQL project's archive (renovate.json moves it).
PGBACKREST_VERSION = "2.56.0-1.pgdg12+1"


def _schedule(value: str) -> str:
    # The runner parses these; the same parser checks them here, before anything deploys.
    try:
        Schedule.parse("schedule", value)
    except RunnerConfigError:
        raise ValueError("expected HH:MM (UTC) or a day and HH:MM, such as '02:00' or 'sun 04:00'") from None
    return value


BackupSchedule = Annotated[str, AfterValidator(_schedule)]


class BackupSettings(ConfigModel):
    bucket_name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    daily_copies: int = Field(default=7, ge=1, le=366)
    weekly_copies: int = Field(default=4, ge=1, le=520)
    monthly_copies: int = Field(default=12, ge=1, le=1200)
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)
    # S3 Object Lock on every backup copy (runner/retention.py): COMPLIANCE can be shortened by
    # nobody; GOVERNANCE by an identity with s3:BypassGovernanceRetention (none on the host).
    # GOVERNANCE by default: a test stack that keeps the defaults must not lock its bucket for up
    # to a year with no way back; prod chooses COMPLIANCE in its own stack file.
    object_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "GOVERNANCE"
    abort_incomplete_upload_days: int = Field(default=1, ge=1, le=30)
    postgres_schedule: BackupSchedule = "02:00"
    influxdb_schedule: BackupSchedule = "02:30"
    verify_schedule: BackupSchedule = "sun 04:00"
    # A daily backup is up to 24 h old just before the next one: less than 25 would always alarm.
    max_age_hours: int = Field(default=26, ge=25, le=24 * 45)
    before_migrations: bool = False
    part_size_mb: Megabytes = Field(default=8, ge=5, le=512)
    memory_limit_mb: Megabytes = Field(default=384, ge=256, le=16384)
    startup_timeout_seconds: Seconds = Field(default=1800, ge=60, le=6 * 3600)

    @model_validator(mode="after")
    def _part_buffers_fit_in_memory_limit(self) -> BackupSettings:
        # Past the limit the runner is OOM-killed mid-dump, every night.
        needed = PART_BUFFERS * self.part_size_mb + RUNNER_BASE_MEMORY_MB
        if needed > self.memory_limit_mb:
            raise ValueError(
                f"memoryLimitMb ({self.memory_limit_mb}) must hold {PART_BUFFERS} parts of partSizeMb "
                f"({self.part_size_mb}) plus {RUNNER_BASE_MEMORY_MB} MB for the runner itself: at least {needed}"
            )
        return self


class PitrSettings(ConfigModel):
    """Point-in-time recovery: WAL archived continuously by pgBackRest, full and differential
    backups on schedule, all under `pgbackrest/` in the backup bucket (runner/pitr.py)."""

    # pgBackRest from the PostgreSQL project's Debian repository (its archive keeps every
    # version, so the pin stays installable when the main repository moves on).
    pgbackrest_version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+(\.\d+)?-\d+\.pgdg\d+\+\d+$")] = (
        PGBACKREST_VERSION
    )
    # The most a lost host loses: a quiet database still closes a WAL segment this often.
    archive_timeout_seconds: Seconds = Field(default=60, ge=15, le=3600)
    retention_days: int = Field(default=14, ge=1, le=365, description="days any moment can be restored to")
    full_schedule: BackupSchedule = "sun 01:00"
    diff_schedule: BackupSchedule = "01:00"
    drill_schedule: BackupSchedule = "sat 05:00"
    # WAL waiting in pg_wal while S3 is unreachable, at most: past it pgBackRest drops segments
    # from the queue instead of letting the data volume fill and stop the database.
    archive_queue_max_mb: Megabytes = Field(default=4096, ge=256, le=1048576)
    # What the RTO is computed for (docs/disaster-recovery.md).
    expected_database_gb: int = Field(default=50, ge=1, le=100000)

    @model_validator(mode="after")
    def _full_is_weekly_diff_daily(self) -> PitrSettings:
        full = Schedule.parse("fullSchedule", self.full_schedule)
        diff = Schedule.parse("diffSchedule", self.diff_schedule)
        if full.weekday is None or diff.weekday is not None:
            raise ValueError(
                f"fullSchedule ({self.full_schedule!r}) must name a day and diffSchedule "
                f"({self.diff_schedule!r}) must not: a weekly full backup, a daily differential"
            )
        if self.retention_days < 7:
            raise ValueError(f"retentionDays ({self.retention_days}) must cover a week: a full backup is weekly")
        return self

    @property
    def repository_lock_days(self) -> int:
        """How long every object pgBackRest writes stays locked (the bucket's default Object Lock
        retention): the window, and the week its oldest moment's full backup may be older by."""
        return self.retention_days + FULL_BACKUP_EVERY_DAYS


class StagingSeedSettings(ConfigModel):
    """Staging's data, a masked copy of prod's (runner/seed.py, runner/staging_seed.py).

    Prod makes the seeds: `rules`, one masking rule for every column of the app's schema (a
    column no rule names stops the seed run: privacy by default), and how long a seed is kept.
    Staging loads them: `sourceStack`, the stack whose seeds it loads (its `stagingSeed` output
    names the bucket, the prefix and the seed's KMS key). A stack does one or the other.
    """

    rules: dict[str, dict[str, str]] | None = Field(default=None, min_length=1)
    # Weekly seeds; four weeks of them let staging go back to an earlier one (seed-load SEED).
    keep_days: int = Field(default=28, ge=7, le=365)
    source_stack: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")] | None
    ) = None

    @field_validator("rules")
    @classmethod
    def _rules_parse(cls, rules: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]] | None:
        try:
            seed.parse_rules(rules or {})
        except seed.SeedError as error:
            raise ValueError(str(error)) from None
        return rules

    @model_validator(mode="after")
    def _makes_or_loads(self) -> StagingSeedSettings:
        if (self.rules is None) == (self.source_stack is None):
            raise ValueError(
                "expected either rules (this stack makes seeds: prod) or sourceStack (this stack loads "
                "them, such as 'organization/audit-x/prod': staging), not both and not neither"
            )
        return self
