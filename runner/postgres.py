"""PostgreSQL: dump to S3, verify by restoring into a scratch database, restore for real.

The dump and the row counts in its manifest come from the same snapshot: the runner opens a
read-only REPEATABLE READ transaction, exports its snapshot, has pg_dump use it (--snapshot),
and counts every table's rows inside that transaction. A restore of the dump must therefore
give exactly those counts, and the drill checks it does: busy tables included.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from runner import pitr
from runner.config import RunnerConfig
from runner.jobs import BackupError, Clock, StderrTail, checksum_mismatch, choose_backup, finish, run_producer_to_s3
from runner.layout import BackupKey, stamp
from runner.storage import BackupStore

log = logging.getLogger("backup.postgres")

KIND = "postgres"
EXTENSION = "dump"
MIGRATIONS_TABLE = "schema_migrations"

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
ORDER BY 1, 2
"""


def table_row_counts(connection: psycopg.Connection[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for schema, table in cursor.execute(_TABLES).fetchall():
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            row = cursor.execute(query).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def latest_migration(connection: psycopg.Connection[Any]) -> str | None:
    """Rails' newest applied migration, or None when the database has no schema_migrations."""
    with connection.cursor() as cursor:
        exists = cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{MIGRATIONS_TABLE}",)).fetchone()
        if not exists or not exists[0]:
            return None
        row = cursor.execute(f"SELECT max(version) FROM public.{MIGRATIONS_TABLE}").fetchone()
        return str(row[0]) if row and row[0] is not None else None


def drop_database(admin: psycopg.Connection[Any], database: str) -> None:
    """DROP DATABASE ... WITH (FORCE), ending the sessions still on it. The runner's login is no
    superuser (components/data/postgres_logins.sh): it may end its own login's sessions alone, so
    it drops as itself, not as the owner role it acts as (the database is that role's, which the
    login is a member of); a session of anyone else makes the drop fail, naming the database."""
    admin.execute("SET ROLE NONE")
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    finally:
        admin.execute("RESET ROLE")


def connect(
    config: RunnerConfig, database: str | None = None, *, host: str | None = None, port: int | None = None
) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(config.dsn(database, host=host, port=port), password=config.pg_password)
    except psycopg.OperationalError as error:
        target = f"{host or config.pg_host}:{port or config.pg_port}/{database or config.pg_database}"
        raise BackupError(f"cannot connect to PostgreSQL at {target}: {str(error).strip()}") from error


def backup(config: RunnerConfig, store: BackupStore, clock: Clock, *, reason: str) -> dict[str, Any]:
    """Dump the database to daily/ (and weekly/, monthly/ when first of the period)."""
    started = clock()
    key = BackupKey("daily", KIND, config.pg_database, stamp(started), EXTENSION)
    with connect(config) as connection:
        connection.read_only = True
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with connection.transaction():
            row = connection.execute("SELECT pg_export_snapshot(), current_setting('server_version')").fetchone()
            assert row is not None
            snapshot, server_version = row
            command = ["pg_dump", "--format=custom", "--no-password", f"--snapshot={snapshot}", config.pg_database]
            # Counting runs while pg_dump streams, in the exporting transaction, which must stay
            # open until pg_dump has imported the snapshot: it does until the dump ends.
            counts: dict[str, int] = {}
            migration: str | None = None
            size, sha256 = 0, ""
            counter_error: list[BaseException] = []

            def count() -> None:
                nonlocal counts, migration
                try:
                    counts = table_row_counts(connection)
                    migration = latest_migration(connection)
                except BaseException as error:  # noqa: BLE001 re-raised below, after the dump
                    counter_error.append(error)

            counter = threading.Thread(target=count, name="row-counts")
            counter.start()
            try:
                size, sha256 = run_producer_to_s3(
                    store, key, command, config.pg_env(), lock=config.retention.lock(key.tier, key.taken_at)
                )
            finally:
                counter.join()
            if counter_error:
                raise BackupError(f"counting rows failed: {counter_error[0]}")
    manifest: dict[str, Any] = {
        "kind": KIND,
        "database": config.pg_database,
        "environment": config.environment,
        "server_version": server_version,
        "format": "pg_dump custom",
        "key": key.data,
        "size_bytes": size,
        "sha256": sha256,
        "started_at": started.isoformat(),
        "ended_at": clock().isoformat(),
        "reason": reason,
        "row_counts": counts,
        "latest_migration": migration,
    }
    if reason == "pre-migration" and config.pitr_full_schedule:
        # "Just before this release" becomes a point-in-time target too.
        manifest["restore_point"] = restore_point(config, f"pre-migration-{key.stamp}")
    return finish(store, key, manifest, clock, config.retention)


def restore_point(config: RunnerConfig, name: str) -> str:
    """A named restore point in the WAL (runner/pitr.py), made as the superuser over the local
    socket; its name is returned for the manifest."""
    user = pitr.pg_user_of(config.pitr_config_file)
    dsn = f"host={config.pitr_pg_socket} port={config.pg_port} user={user} dbname={config.pg_database}"
    try:
        with psycopg.connect(dsn, autocommit=True) as connection:
            pitr.create_restore_point(connection, name)
    except psycopg.Error as error:
        raise BackupError(f"creating the restore point {name} failed: {str(error).strip()}") from error
    return name


@dataclass
class VerifyReport:
    key: str
    checksum_ok: bool = False
    toc_entries: int = 0
    restore_s: float = 0.0
    tables_checked: int = 0
    mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)
    migration_expected: str | None = None
    migration_found: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.checksum_ok
            and not self.mismatches
            and self.migration_expected == self.migration_found
            and self.toc_entries > 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "ok": self.ok,
            "checksum_ok": self.checksum_ok,
            "toc_entries": self.toc_entries,
            "restore_s": round(self.restore_s, 3),
            "tables_checked": self.tables_checked,
            "mismatches": {k: {"expected": e, "restored": r} for k, (e, r) in self.mismatches.items()},
            "latest_migration": {"expected": self.migration_expected, "restored": self.migration_found},
        }


def _feed(store: BackupStore, key: BackupKey, process: subprocess.Popen[bytes]) -> str:
    """Write an object to a process's stdin; return the SHA-256 of what was read from S3."""
    assert process.stdin is not None
    digest = hashlib.sha256()
    try:
        for chunk in store.iter_object(key.data):
            digest.update(chunk)
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass  # the process stopped reading: its exit code and stderr say why
    finally:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
    return digest.hexdigest()


def stream_into(store: BackupStore, key: BackupKey, command: list[str], env: dict[str, str]) -> tuple[str, int, str]:
    """Feed an object to a command's stdin; return (sha256 of what was read, exit code, stderr)."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert process.stderr is not None
    stderr = StderrTail(process.stderr)
    sha256 = _feed(store, key, process)
    return sha256, process.wait(), stderr.text()


def count_toc_entries(store: BackupStore, key: BackupKey, config: RunnerConfig) -> int:
    """Read the dump's table of contents (pg_restore --list), without restoring anything."""
    process = subprocess.Popen(
        ["pg_restore", "--list"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=config.pg_env(),
    )
    stdout, stderr_stream = process.stdout, process.stderr
    assert stdout is not None and stderr_stream is not None
    # pg_restore stops reading once it has the TOC; read its output alongside, or both block.
    listing: list[bytes] = []
    reader = threading.Thread(target=lambda: listing.append(stdout.read()), daemon=True)
    reader.start()
    stderr = StderrTail(stderr_stream)
    _feed(store, key, process)
    reader.join()
    if process.wait() != 0:
        raise BackupError(f"pg_restore cannot read the table of contents of {key.data}: {stderr.text()}")
    lines = b"".join(listing).decode(errors="replace").splitlines()
    return sum(1 for line in lines if line and not line.startswith(";"))


# Given the scratch database of a drill that passed, the backup and its manifest, before the
# scratch database is dropped (the staging seed is made there: runner/seed.py).
AfterDrill = Callable[[str, BackupKey, dict[str, Any]], None]


def verify(
    config: RunnerConfig,
    store: BackupStore,
    clock: Clock,
    key_or_date: str | None = None,
    *,
    then: AfterDrill | None = None,
) -> VerifyReport:
    """The restore drill: checksum, TOC, restore into a scratch database, compare with the
    manifest; then `then`, on the verified copy, before it is dropped."""
    key = choose_backup(store, KIND, config.pg_database, EXTENSION, key_or_date)
    manifest = store.get_json(key.manifest)
    report = VerifyReport(key=key.data, migration_expected=manifest.get("latest_migration"))
    report.toc_entries = count_toc_entries(store, key, config)
    scratch = f"{config.pg_database}_verify_{stamp(clock()).lower().replace('-', '')}"[:63]
    with connect(config, "postgres", host=config.verify_host, port=config.verify_port) as admin:
        admin.autocommit = True
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        started = time.monotonic()
        sha256, code, errors = stream_into(
            store,
            key,
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={scratch}"],
            config.pg_env(scratch, host=config.verify_host, port=config.verify_port),
        )
        report.restore_s = time.monotonic() - started
        report.checksum_ok = sha256 == manifest["sha256"]
        if not report.checksum_ok:
            raise checksum_mismatch(key, manifest["sha256"], sha256, "the backup is corrupt")
        if code != 0:
            raise BackupError(f"pg_restore of {key.data} failed with code {code}: {errors}")
        with connect(config, scratch, host=config.verify_host, port=config.verify_port) as restored:
            found = table_row_counts(restored)
            report.migration_found = latest_migration(restored)
        expected: dict[str, int] = manifest["row_counts"]
        report.tables_checked = len(expected)
        for table in sorted(set(expected) | set(found)):
            if expected.get(table, -1) != found.get(table, -1):
                report.mismatches[table] = (expected.get(table, -1), found.get(table, -1))
        if report.ok and then is not None:
            then(scratch, key, manifest)
    finally:
        with connect(config, "postgres", host=config.verify_host, port=config.verify_port) as admin:
            admin.autocommit = True
            drop_database(admin, scratch)
    if not report.ok:
        raise BackupError(f"restore drill of {key.data} found differences: {report.as_dict()}")
    return report


def database_is_empty(config: RunnerConfig, database: str, host: str, port: int) -> bool:
    with connect(config, database, host=host, port=port) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%'"
        ).fetchone()
        return bool(row) and row[0] == 0


def restore(
    config: RunnerConfig,
    store: BackupStore,
    *,
    target_database: str,
    key_or_date: str | None = None,
    force: bool = False,
    target_host: str | None = None,
    target_port: int | None = None,
) -> dict[str, Any]:
    """Restore a backup into `target_database`, which must exist and be empty unless `force`."""
    host, port = target_host or config.pg_host, target_port or config.pg_port
    key = choose_backup(store, KIND, config.pg_database, EXTENSION, key_or_date)
    manifest = store.get_json(key.manifest)
    if not database_is_empty(config, target_database, host, port) and not force:
        raise BackupError(
            f"database {target_database} on {host}:{port} is not empty: refusing to overwrite it. "
            "Restore into a new database, or pass --force to replace its contents."
        )
    # Checked before a single byte reaches the target: a corrupt backup must not half-replace data.
    sha256, size = store.sha256_of(key.data)
    if sha256 != manifest["sha256"]:
        raise checksum_mismatch(key, manifest["sha256"], sha256, "nothing was restored")
    command = ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target_database}"]
    if force:
        command[1:1] = ["--clean", "--if-exists"]
    started = time.monotonic()
    _, code, errors = stream_into(store, key, command, config.pg_env(target_database, host=host, port=port))
    if code != 0:
        raise BackupError(f"pg_restore into {target_database} failed with code {code}: {errors}")
    return {
        "key": key.data,
        "database": target_database,
        "size_bytes": size,
        "restore_s": round(time.monotonic() - started, 3),
    }
