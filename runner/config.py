"""The runner's configuration, from its environment (set by the Pulumi program, or by hand).

Read and checked once; a missing or malformed variable stops the runner with a message naming
it. Secrets are read from files (`*_FILE`) so they are never in the process's argument list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runner import pitr
from runner.retention import LOCK_MODES, RetentionPolicy


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    """A daily time (`02:00`) or a weekly one (`sun 04:00`), UTC."""

    hour: int
    minute: int
    weekday: int | None = None  # Monday is 0, as datetime.weekday()

    DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    @classmethod
    def parse(cls, name: str, text: str) -> Schedule:
        match = re.fullmatch(r"(?:(mon|tue|wed|thu|fri|sat|sun) )?([01]\d|2[0-3]):([0-5]\d)", text.strip().lower())
        if not match:
            raise ConfigError(f"{name}={text!r}: expected HH:MM or a day and HH:MM, such as '02:00' or 'sun 04:00'")
        day, hour, minute = match.groups()
        return cls(int(hour), int(minute), cls.DAYS.index(day) if day else None)


@dataclass(frozen=True)
class RunnerConfig:
    environment: str
    bucket: str
    region: str
    s3_endpoint: str | None
    writer_profile: str | None
    reader_profile: str | None
    part_size_mb: int
    pg_host: str
    pg_port: int
    pg_user: str
    pg_database: str
    pg_password: str
    verify_host: str
    verify_port: int
    influx_url: str | None
    influx_org: str | None
    influx_token: str | None
    influx_metrics_bucket: str | None
    state_dir: Path
    max_age_hours: float
    postgres_schedule: Schedule
    influxdb_schedule: Schedule | None
    verify_schedule: Schedule
    retention: RetentionPolicy
    # pgBackRest's backups (runner/pitr.py); None where point-in-time recovery is not set up.
    pitr_full_schedule: Schedule | None = None
    pitr_diff_schedule: Schedule | None = None
    pitr_drill_schedule: Schedule | None = None
    pitr_config_file: str = pitr.CONFIG_FILE
    pitr_secrets_dir: str = pitr.SECRETS_DIR
    # The server's local socket, where the `postgres` superuser may log in (trust): restore points.
    pitr_pg_socket: str = "/var/run/postgresql"
    # Staging's data (runner/staging_seed.py). Prod makes seeds: the masking rules, the masking
    # key, and the KMS key the seeds are encrypted with. Staging loads them: where from (prod's
    # bucket and database name) and as whom (a read-only profile for staging-seed/ alone).
    seed_rules_file: Path | None = None
    seed_key: str | None = None
    seed_kms_key_id: str | None = None
    seed_source_bucket: str | None = None
    seed_source_database: str | None = None
    seed_reader_profile: str | None = None
    # Who releases copies past their count (`release`, off the host): a profile that may tag
    # them, else the default credentials of whoever runs it. Never the writer on the host.
    release_profile: str | None = None

    def pg_env(
        self, database: str | None = None, *, host: str | None = None, port: int | None = None
    ) -> dict[str, str]:
        """Environment for libpq tools (pg_dump, pg_restore, psql): password never on a command line."""
        return {
            **os.environ,
            "PGHOST": host or self.pg_host,
            "PGPORT": str(port or self.pg_port),
            "PGUSER": self.pg_user,
            "PGDATABASE": database or self.pg_database,
            "PGPASSWORD": self.pg_password,
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "audit-x-backup",
        }

    def dsn(self, database: str | None = None, *, host: str | None = None, port: int | None = None) -> str:
        return (
            f"host={host or self.pg_host} port={port or self.pg_port} user={self.pg_user} "
            f"dbname={database or self.pg_database} connect_timeout=10 application_name=audit-x-backup"
        )


def _secret_from_file(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{name}_FILE={path!r}: cannot read it ({error.strerror})") from None
    value = env.get(name)
    if required and not value:
        raise ConfigError(f"{name}_FILE (or {name}) is required")
    return value


def load(env: Mapping[str, str] | None = None) -> RunnerConfig:
    env = os.environ if env is None else env
    problems: list[str] = []

    def get(name: str, default: str | None = None) -> str:
        value = env.get(name, default)
        if value is None or value == "":
            problems.append(f"{name} is required")
            return ""
        return value

    def number(name: str, default: str, low: float, high: float) -> float:
        text = get(name, default)
        try:
            value = float(text)
        except ValueError:
            problems.append(f"{name}={text!r}: expected a number")
            return low
        if not low <= value <= high:
            problems.append(f"{name}={text!r}: expected {low:g} to {high:g}")
        return value

    def schedule(name: str, default: str | None) -> Schedule | None:
        text = env.get(name, default)
        if text in (None, "", "off"):
            return None
        try:
            return Schedule.parse(name, text)
        except ConfigError as error:
            problems.append(str(error))
            return None

    try:
        pg_password = _secret_from_file(env, "PGPASSWORD", required=True) or ""
        influx_token = _secret_from_file(env, "INFLUX_TOKEN", required=False)
        seed_key = _secret_from_file(env, "SEED_KEY", required=False)
    except ConfigError as error:
        raise ConfigError(f"backup runner configuration: {error}") from None

    def lock_mode() -> str | None:
        text = get("BACKUP_LOCK_MODE", "off")
        if text == "off":
            return None
        if text not in LOCK_MODES:
            problems.append(f"BACKUP_LOCK_MODE={text!r}: expected {', '.join(LOCK_MODES)} or off")
            return None
        return text

    pg_host = get("PGHOST", "postgres")
    pg_port = int(number("PGPORT", "5432", 1, 65535))
    config = RunnerConfig(
        environment=get("BACKUP_ENVIRONMENT"),
        bucket=get("BACKUP_BUCKET"),
        region=get("AWS_REGION", env.get("AWS_DEFAULT_REGION")),
        s3_endpoint=env.get("S3_ENDPOINT_URL") or None,
        # Two identities: the writer can only add backups, the reader (verify, restore) only read.
        writer_profile=env.get("BACKUP_WRITER_PROFILE") or None,
        reader_profile=env.get("BACKUP_READER_PROFILE") or None,
        part_size_mb=int(number("BACKUP_PART_SIZE_MB", "8", 5, 512)),
        pg_host=pg_host,
        pg_port=pg_port,
        pg_user=get("PGUSER"),
        pg_database=get("PGDATABASE"),
        pg_password=pg_password,
        verify_host=env.get("VERIFY_PGHOST") or pg_host,
        verify_port=int(env.get("VERIFY_PGPORT") or pg_port),
        influx_url=env.get("INFLUX_URL") or None,
        influx_org=env.get("INFLUX_ORG") or None,
        influx_token=influx_token,
        influx_metrics_bucket=env.get("INFLUX_METRICS_BUCKET") or None,
        state_dir=Path(get("BACKUP_STATE_DIR", "/var/lib/audit-x-backup")),
        max_age_hours=number("BACKUP_MAX_AGE_HOURS", "26", 1, 24 * 45),
        postgres_schedule=schedule("BACKUP_SCHEDULE_POSTGRES", "02:00") or Schedule(2, 0),
        influxdb_schedule=schedule("BACKUP_SCHEDULE_INFLUXDB", "02:30"),
        verify_schedule=schedule("BACKUP_SCHEDULE_VERIFY", "sun 04:00") or Schedule(4, 0, 6),
        pitr_full_schedule=schedule("BACKUP_PITR_FULL_SCHEDULE", "off"),
        pitr_diff_schedule=schedule("BACKUP_PITR_DIFF_SCHEDULE", "off"),
        pitr_drill_schedule=schedule("BACKUP_PITR_DRILL_SCHEDULE", "off"),
        pitr_config_file=env.get("PITR_CONFIG_FILE") or pitr.CONFIG_FILE,
        pitr_secrets_dir=env.get("PITR_SECRETS_DIR") or pitr.SECRETS_DIR,
        pitr_pg_socket=env.get("PITR_PG_SOCKET") or "/var/run/postgresql",
        seed_rules_file=Path(env["SEED_RULES_FILE"]) if env.get("SEED_RULES_FILE") else None,
        seed_key=seed_key or None,
        seed_kms_key_id=env.get("SEED_KMS_KEY_ID") or None,
        seed_source_bucket=env.get("SEED_SOURCE_BUCKET") or None,
        seed_source_database=env.get("SEED_SOURCE_DATABASE") or None,
        seed_reader_profile=env.get("SEED_READER_PROFILE") or None,
        release_profile=env.get("BACKUP_RELEASE_PROFILE") or None,
        retention=RetentionPolicy(
            copies={
                "daily": int(number("BACKUP_DAILY_COPIES", "7", 1, 366)),
                "weekly": int(number("BACKUP_WEEKLY_COPIES", "4", 1, 520)),
                "monthly": int(number("BACKUP_MONTHLY_COPIES", "12", 1, 1200)),
            },
            mode=lock_mode(),
        ),
    )
    if bool(config.seed_rules_file) != bool(config.seed_key):
        problems.append("SEED_RULES_FILE and SEED_KEY_FILE go together: a seed needs its rules and its key")
    if bool(config.seed_source_bucket) != bool(config.seed_source_database):
        problems.append("SEED_SOURCE_BUCKET and SEED_SOURCE_DATABASE go together: where the seeds are, and whose")
    if problems:
        raise ConfigError("backup runner configuration: " + "; ".join(problems))
    return config
