"""Point-in-time recovery with pgBackRest: its configuration, and the commands around it.

PostgreSQL archives every WAL segment to the environment's bucket, under `pgbackrest/`, through
pgBackRest (`archive_command`, asynchronous with a local spool); the runner takes full and
differential backups on schedule and expires them by time. Together they restore the database
to any moment of the retention window: `restore(..., Target.time(...))`.

The configuration is two files, so that no secret is ever in a plain one: `pgbackrest.conf`
(everything but secrets: the repository, retention, the spool and its cap) and a secrets file in
a directory every command includes (`--config-include-path`): the S3 key of pgBackRest's own
identity and the repository's encryption passphrase, mode 0400 for the user PostgreSQL runs as.

The cap on the local queue (`archive-push-queue-max`): while S3 is unreachable, WAL waits in
pg_wal; past the cap pgBackRest drops it from the queue (and says so in the log and in
pg_stat_archiver) instead of letting the volume fill up and stop the database. Point-in-time
recovery then has a gap until the next backup; the database stays up.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

STANZA = "audit-x"
REPOSITORY_PREFIX = "pgbackrest"
CONFIG_FILE = "/etc/pgbackrest/pgbackrest.conf"
# The secrets' own directory, included by every command (`--config-include-path`): with the
# other secret files, mode 0400 for the database's user alone.
SECRETS_DIR = "/run/secrets/pgbackrest"
SECRETS_FILE = f"{SECRETS_DIR}/secrets.conf"
SECRET_OPTIONS = ("repo1-s3-key", "repo1-s3-key-secret", "repo1-cipher-pass")
# pgBackRest's own default for `archive-timeout`, kept: a failed push is reported after it.
ARCHIVE_PUSH_TIMEOUT_SECONDS = 60


class PitrError(RuntimeError):
    """A pgBackRest command that failed; the message has its exit code and last output."""


@dataclass(frozen=True)
class Repository:
    """Where the repository is: the environment's bucket, under its own prefix, KMS-encrypted."""

    bucket: str
    region: str
    kms_key_id: str | None = None
    endpoint: str | None = None  # default: s3.<region>.amazonaws.com
    port: int = 443
    verify_tls: bool = True
    path_style: bool = False


@dataclass(frozen=True)
class Settings:
    repository: Repository
    retention_days: int
    queue_max_mb: int
    pg_path: str
    pg_socket_path: str
    pg_port: int = 5432
    # The role pgBackRest connects as (stanza-create, check, backup) and the drill reads with: the
    # server's bootstrap superuser, POSTGRES_USER. The official image creates no `postgres` role
    # when POSTGRES_USER names another, and pgBackRest's default is the OS user, postgres.
    pg_user: str = "postgres"
    spool_path: str = "/var/spool/pgbackrest"
    lock_path: str = "/tmp/pgbackrest"
    log_path: str = "/var/log/pgbackrest"
    process_max: int = 2
    # How long archive-push waits for the asynchronous push before it fails the segment (and
    # PostgreSQL retries it).
    archive_push_timeout_seconds: int = ARCHIVE_PUSH_TIMEOUT_SECONDS
    stanza: str = STANZA


def render_config(settings: Settings) -> str:
    """`pgbackrest.conf`: everything but the secrets (SECRETS_DIR)."""
    repo = settings.repository
    options = {
        "repo1-type": "s3",
        "repo1-path": f"/{REPOSITORY_PREFIX}",
        "repo1-s3-bucket": repo.bucket,
        "repo1-s3-region": repo.region,
        "repo1-s3-endpoint": repo.endpoint or f"s3.{repo.region}.amazonaws.com",
        "repo1-storage-port": str(repo.port),
        "repo1-s3-uri-style": "path" if repo.path_style else "host",
        "repo1-storage-verify-tls": "y" if repo.verify_tls else "n",
        # pgBackRest encrypts every file itself; S3 encrypts again with the environment's key.
        "repo1-cipher-type": "aes-256-cbc",
        # Time-based: every backup needed to restore to any moment of the last N days is kept,
        # and the WAL from the oldest of them on; nothing older.
        "repo1-retention-full-type": "time",
        "repo1-retention-full": str(settings.retention_days),
        "process-max": str(settings.process_max),
        "compress-type": "zst",
        "start-fast": "y",
        "archive-async": "y",
        "spool-path": settings.spool_path,
        "archive-push-queue-max": f"{settings.queue_max_mb}MiB",
        "archive-timeout": str(settings.archive_push_timeout_seconds),
        "lock-path": settings.lock_path,
        "log-path": settings.log_path,
        "log-level-console": "warn",
        "log-level-file": "info",
    }
    if repo.kms_key_id:
        options["repo1-s3-kms-key-id"] = repo.kms_key_id
    stanza = {
        "pg1-path": settings.pg_path,
        "pg1-socket-path": settings.pg_socket_path,
        "pg1-port": str(settings.pg_port),
        "pg1-user": settings.pg_user,
    }
    lines = ["# Written by the audit-x Pulumi program; no secret here (see --config-include-path).", "[global]"]
    lines += [f"{key}={value}" for key, value in options.items()]
    lines += ["", f"[{settings.stanza}]"]
    lines += [f"{key}={value}" for key, value in stanza.items()]
    return "\n".join(lines) + "\n"


def pg_user_of(config_file: str) -> str:
    """The role pgBackRest connects as, from its configuration file (pg1-user)."""
    try:
        return configured_pg_user(Path(config_file).read_text())
    except OSError:
        return "postgres"


def configured_pg_user(config_text: str) -> str:
    """The `pg1-user` of a rendered pgbackrest.conf (pgBackRest's own default when it has none)."""
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "pg1-user":
            return value.strip()
    return "postgres"


def render_secrets(*, access_key_id: str, secret_access_key: str, cipher_pass: str) -> str:
    values = dict(zip(SECRET_OPTIONS, (access_key_id, secret_access_key, cipher_pass), strict=True))
    return "[global]\n" + "".join(f"{key}={value}\n" for key, value in values.items())


def config_options(config_file: str = CONFIG_FILE, secrets_dir: str = SECRETS_DIR) -> list[str]:
    """How every pgBackRest command is pointed at the two files."""
    return [f"--config={config_file}", f"--config-include-path={secrets_dir}"]


def archive_command(stanza: str = STANZA, config_file: str = CONFIG_FILE, secrets_dir: str = SECRETS_DIR) -> str:
    return " ".join(["pgbackrest", *config_options(config_file, secrets_dir), f"--stanza={stanza}", "archive-push %p"])


def server_settings(
    archive_timeout_seconds: int,
    *,
    stanza: str = STANZA,
    config_file: str = CONFIG_FILE,
    secrets_dir: str = SECRETS_DIR,
) -> dict[str, str]:
    """PostgreSQL's settings for continuous archiving (wal_level replica is the default)."""
    return {
        "archive_mode": "on",
        "archive_command": archive_command(stanza, config_file, secrets_dir),
        # A quiet database still closes a segment this often: the most a lost host loses.
        "archive_timeout": str(archive_timeout_seconds),
    }


# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a restore stops: the end of the WAL, a moment, or a named restore point."""

    kind: str  # "latest", "time", "name"
    value: str = ""

    @classmethod
    def latest(cls) -> Target:
        return cls("latest")

    @classmethod
    def time(cls, moment: datetime) -> Target:
        if moment.tzinfo is None:
            raise ValueError(f"{moment.isoformat()}: a restore target needs a time zone")
        return cls("time", moment.isoformat(sep=" "))

    @classmethod
    def name(cls, restore_point: str) -> Target:
        return cls("name", restore_point)

    def options(self) -> list[str]:
        if self.kind == "latest":
            return ["--type=default"]
        return [f"--type={self.kind}", f"--target={self.value}", "--target-action=promote"]


class PgBackRest:
    """pgBackRest's commands for one stanza; `prefix` runs them as the database's user."""

    def __init__(
        self,
        config_file: str = CONFIG_FILE,
        secrets_dir: str = SECRETS_DIR,
        *,
        stanza: str = STANZA,
        prefix: Sequence[str] = (),
    ) -> None:
        self.config = config_options(config_file, secrets_dir)
        self.stanza = stanza
        self.prefix = list(prefix)

    def run(self, command: str, *options: str, timeout: float = 3600) -> str:
        argv = [
            *self.prefix,
            "pgbackrest",
            *self.config,
            f"--stanza={self.stanza}",
            command,
            *options,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise PitrError(f"pgbackrest {command} exited with code {result.returncode}: {' | '.join(tail)}")
        return result.stdout

    def stanza_create(self) -> None:
        self.run("stanza-create")

    def check(self) -> None:
        """Archiving works end to end: a WAL switch reaches the repository."""
        self.run("check")

    def backup(self, kind: str) -> None:
        if kind not in ("full", "diff", "incr"):
            raise ValueError(f"backup type {kind!r}: expected full, diff or incr")
        self.run("backup", f"--type={kind}")

    def expire(self) -> None:
        self.run("expire")

    def verify(self) -> None:
        """Every file of the repository against its checksum; raises on any mismatch.

        pgBackRest 2.45's verify exits 0 whatever it finds and reports `status: error` in its
        summary (with what was wrong on the lines after it), so the summary is what is read."""
        output = self.run("verify", "--log-level-console=info")
        lines = [line.strip() for line in output.splitlines()]
        if "status: error" in lines:
            findings = lines[lines.index("status: error") + 1 :]
            details = "; ".join(line for line in findings if line and "verify command end" not in line)
            raise PitrError(f"pgbackrest verify found a damaged repository: {details}")

    def info(self) -> dict[str, Any]:
        document = json.loads(self.run("info", "--output=json"))
        return next((stanza for stanza in document if stanza.get("name") == self.stanza), {})

    def as_database_user(self, argv: Sequence[str]) -> list[str]:
        """Another command (pg_ctl, pg_amcheck) run the way pgBackRest's are."""
        return [*self.prefix, *argv]

    def restore(
        self, target: Target, *, pg_path: str | None = None, delta: bool = False, backup_set: str | None = None
    ) -> None:
        """`backup_set`: restore from this backup (its label) rather than the one pgBackRest picks."""
        options = target.options()
        if backup_set:
            options.append(f"--set={backup_set}")
        if pg_path:
            options.append(f"--pg1-path={pg_path}")
        if delta:
            options.append("--delta")  # only the files that differ: the fastest way back in place
        self.run("restore", *options)


def backups(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The repository's backups, oldest first: label, type, start and stop (Unix seconds)."""
    return [
        {
            "label": b["label"],
            "type": b["type"],
            "start": int(b["timestamp"]["start"]),
            "stop": int(b["timestamp"]["stop"]),
        }
        for b in info.get("backup", [])
    ]


def last_backup_stop(info: Mapping[str, Any], kind: str) -> int | None:
    """When the newest backup of `kind` (full, diff) finished, Unix seconds; None when none."""
    stops = [b["stop"] for b in backups(info) if b["type"] == kind]
    return max(stops) if stops else None


# --- from the database ------------------------------------------------------------------------------

ARCHIVER_STATUS = """
SELECT archived_count, last_archived_wal, extract(epoch FROM last_archived_time),
       failed_count, last_failed_wal, extract(epoch FROM last_failed_time),
       pg_walfile_name(pg_current_wal_lsn())
FROM pg_stat_archiver
"""
# WAL segments per "log id" with the default 16 MiB segments: file names count in this base.
SEGMENTS_PER_LOG = 0x100000000 // (16 * 1024 * 1024)


def segment_number(wal_file: str) -> int:
    """`000000010000000000000003` -> 3 (the timeline aside)."""
    return int(wal_file[8:16], 16) * SEGMENTS_PER_LOG + int(wal_file[16:24], 16)


@dataclass(frozen=True)
class ArchiverStatus:
    archived_count: int
    last_archived_wal: str | None
    last_archived_at: float | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: float | None
    current_wal: str

    @property
    def segments_waiting(self) -> int:
        """Complete segments not archived yet: 0 when archiving keeps up, idle or busy (the one
        being written is not complete)."""
        if self.last_archived_wal is None or len(self.last_archived_wal) != 24:
            return max(0, segment_number(self.current_wal))
        return max(0, segment_number(self.current_wal) - segment_number(self.last_archived_wal) - 1)

    @property
    def failing(self) -> bool:
        """The last attempt failed: no success since the last failure."""
        return self.last_failed_at is not None and (self.last_archived_at or 0) < self.last_failed_at


def archiver_status(connection: Any) -> ArchiverStatus:
    row = connection.execute(ARCHIVER_STATUS).fetchone()
    archived, last_wal, last_at, failed, failed_wal, failed_at, current = row
    return ArchiverStatus(
        int(archived),
        last_wal,
        float(last_at) if last_at is not None else None,
        int(failed),
        failed_wal,
        float(failed_at) if failed_at is not None else None,
        str(current),
    )


def create_restore_point(connection: Any, name: str) -> str:
    """A named restore point in the WAL (`pg_create_restore_point`): "just before this release"
    becomes a target. Returns its WAL position."""
    row = connection.execute("SELECT pg_create_restore_point(%s)::text", (name,)).fetchone()
    return str(row[0])
