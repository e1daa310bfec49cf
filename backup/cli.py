"""`python -m backup COMMAND`: the runner's commands, for the container and for operators.

    postgres            dump PostgreSQL to S3 (daily/, and weekly/ monthly/ when first)
    influxdb            back up InfluxDB to S3 the same way
    verify [BACKUP]     restore drill: checksum, TOC, restore into a scratch database, compare
    restore --target-db DB [BACKUP] [--force]
                        restore the latest backup, or BACKUP (a date like 2026-11-20, or a key)
    fetch KIND [BACKUP] --to FILE
                        download a backup (checksum checked), for manual restores
    status [--json]     latest complete backup of each kind in the bucket, and its age
    healthcheck         exit 0 only while every backup kind succeeded within the max age
    serve               run on schedule (the container's command)

Exit status: 0 on success, 1 when the operation failed (the message says why), 2 on bad
configuration or usage. Every backup and verify run writes a success or failure metric.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from backup import config as runner_config
from backup import influxdb, metrics, postgres, retention, state
from backup.config import RunnerConfig, Schedule
from backup.jobs import BackupError, Clock, checksum_mismatch, choose_backup, latest, utc_now
from backup.storage import BackupStore, s3_client

log = logging.getLogger("backup")

KINDS = {postgres.KIND: postgres, influxdb.KIND: influxdb}


WRITES = {postgres.KIND, influxdb.KIND}


# Builds S3 clients off the main thread: loading boto3 (~0.3 s) then overlaps connecting to the
# database and the first part of the dump, instead of delaying the dump's start.
_CLIENT_BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-client")


def make_store(config: RunnerConfig, command: str) -> BackupStore:
    """The bucket, as the identity a command needs: only backups write; the rest read, with the
    reader's profile where one is given (off the host), else the writer's (which may read)."""
    profile = config.writer_profile if command in WRITES else (config.reader_profile or config.writer_profile)
    client = _CLIENT_BUILDER.submit(s3_client, config.region, config.s3_endpoint, profile)
    return BackupStore(client, config.bucket, part_size=config.part_size_mb * 1024 * 1024)


def run_recorded(
    config: RunnerConfig, kind: str, reason: str, clock: Clock, operation: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a backup or drill; write its metric and, on success, the health state. Re-raise failures."""
    started = time.monotonic()
    try:
        result = operation()
    except Exception as error:
        outcome = metrics.RunOutcome(kind, reason, False, time.monotonic() - started, error=str(error))
        metrics.record(config, outcome, clock().timestamp())
        raise
    size = int(result.get("size_bytes", 0))
    metrics.record(
        config, metrics.RunOutcome(kind, reason, True, time.monotonic() - started, size), clock().timestamp()
    )
    state.record_success(config.state_dir, kind, clock(), {"key": result.get("key", "")})
    return result


def backup_kinds(config: RunnerConfig) -> list[str]:
    """The kinds this runner is responsible for: InfluxDB only when it is configured."""
    return [postgres.KIND] + ([influxdb.KIND] if config.influxdb_schedule and config.influx_url else [])


def backup_name(config: RunnerConfig, kind: str) -> str:
    """What a kind's backups are named after: the database, or the InfluxDB org."""
    return config.pg_database if kind == postgres.KIND else influxdb.backup_name(config)


def status(config: RunnerConfig, store: BackupStore, clock: Clock) -> dict[str, Any]:
    now = clock()
    report: dict[str, Any] = {}
    for kind in backup_kinds(config):
        module = KINDS[kind]
        key = latest(store, kind, backup_name(config, kind), module.EXTENSION)
        report[kind] = (
            {
                "key": key.data,
                "taken_at": key.taken_at.isoformat(),
                "age_hours": round((now - key.taken_at).total_seconds() / 3600, 2),
            }
            if key
            else {"key": None, "taken_at": None, "age_hours": None}
        )
    return report


def healthcheck(config: RunnerConfig, clock: Clock) -> tuple[bool, str]:
    limit = timedelta(hours=config.max_age_hours)
    problems = []
    for kind in backup_kinds(config):
        last = state.last_success(config.state_dir, kind)
        if last is None:
            problems.append(f"{kind}: no successful backup recorded")
        elif clock() - last > limit:
            problems.append(f"{kind}: last success {last.isoformat()} is older than {config.max_age_hours:g} h")
    return (not problems, "; ".join(problems) or "every backup is fresh")


def fetch(config: RunnerConfig, store: BackupStore, kind: str, which: str | None, target: Path) -> dict[str, Any]:
    """Download a backup to `target`; the file is removed again if its checksum is wrong."""
    module = KINDS[kind]
    key = choose_backup(store, kind, backup_name(config, kind), module.EXTENSION, which)
    manifest = store.get_json(key.manifest)
    digest = hashlib.sha256()
    with target.open("wb") as handle:
        for chunk in store.iter_object(key.data):
            digest.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != manifest["sha256"]:
        target.unlink()
        raise checksum_mismatch(key, manifest["sha256"], digest.hexdigest(), "the download was removed")
    return {"key": key.data, "file": str(target), "size_bytes": target.stat().st_size, "sha256": manifest["sha256"]}


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first moment strictly after `after` that `schedule` names."""
    candidate = after.replace(hour=schedule.hour, minute=schedule.minute, second=0, microsecond=0)
    while candidate <= after or (schedule.weekday is not None and candidate.weekday() != schedule.weekday):
        candidate += timedelta(days=1)
    return candidate


class _Stop:
    requested = False


def serve(
    config: RunnerConfig,
    writer: BackupStore,
    reader: BackupStore,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run each job at its schedule until SIGTERM; start with a backup when the last is stale."""
    stop = _Stop()
    signal.signal(signal.SIGTERM, lambda *_: setattr(stop, "requested", True))
    for kind, found in status(config, reader, clock).items():
        if found["taken_at"]:
            state.record_success(
                config.state_dir, kind, datetime.fromisoformat(found["taken_at"]), {"key": found["key"]}
            )
    jobs: dict[str, tuple[Schedule, Callable[[], Any]]] = {
        "postgres": (config.postgres_schedule, lambda: run_backup(config, writer, clock, postgres.KIND, "scheduled")),
        "verify": (config.verify_schedule, lambda: run_verify(config, reader, clock, None)),
    }
    if config.influxdb_schedule and config.influx_url:
        jobs["influxdb"] = (
            config.influxdb_schedule,
            lambda: run_backup(config, writer, clock, influxdb.KIND, "scheduled"),
        )
    healthy, why = healthcheck(config, clock)
    if not healthy:
        log.info("starting with a backup: %s", why)
        for kind in backup_kinds(config):
            _run_logged(lambda kind=kind: run_backup(config, writer, clock, kind, "startup"))
    due = {name: next_run(schedule, clock()) for name, (schedule, _) in jobs.items()}
    while not stop.requested:
        name = min(due, key=lambda n: due[n])
        wait = (due[name] - clock()).total_seconds()
        if wait > 0:
            sleep(min(wait, 30))  # wake regularly: SIGTERM and clock changes are noticed quickly
            continue
        _run_logged(jobs[name][1])
        due[name] = next_run(jobs[name][0], clock())


def _run_logged(job: Callable[[], Any]) -> None:
    try:
        job()
    except Exception:
        log.exception("scheduled run failed")


def run_backup(config: RunnerConfig, store: BackupStore, clock: Clock, kind: str, reason: str) -> dict[str, Any]:
    """One backup, then the tiers' retention, whether the backup succeeded or not: a failed run
    is exactly when the newest copies must be kept longer."""
    module = KINDS[kind]
    try:
        return run_recorded(config, kind, reason, clock, lambda: module.backup(config, store, clock, reason=reason))
    finally:
        keep_copies(config, store, clock, kind)


def keep_copies(config: RunnerConfig, store: BackupStore, clock: Clock, kind: str) -> None:
    """Extend the newest copies' locks and release the ones past their count (backup/retention.py)."""
    module = KINDS[kind]
    try:
        retention.enforce(
            store,
            config.retention,
            kind=kind,
            name=backup_name(config, kind),
            extension=module.EXTENSION,
            now=clock(),
        )
    except Exception:
        # Never hides the backup's own outcome; the next run tries again, well within a period.
        log.exception("keeping the %s copies by count failed", kind)


def run_verify(config: RunnerConfig, store: BackupStore, clock: Clock, which: str | None) -> dict[str, Any]:
    return run_recorded(
        config, "verify", "drill", clock, lambda: postgres.verify(config, store, clock, which).as_dict()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backup", description="audit-x backups: PostgreSQL and InfluxDB to S3."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for kind in KINDS:
        sub = commands.add_parser(kind, help=f"back up {kind} now")
        sub.add_argument("--reason", default="manual", help="recorded in the manifest and the metric")
    verify = commands.add_parser("verify", help="restore drill of the latest (or a named) backup")
    verify.add_argument("backup", nargs="?", help="a date (2026-11-20) or a key; default: the latest")
    restore = commands.add_parser("restore", help="restore a PostgreSQL backup into a database")
    restore.add_argument("backup", nargs="?", help="a date (2026-11-20) or a key; default: the latest")
    restore.add_argument("--target-db", required=True, help="an existing database to restore into")
    restore.add_argument("--target-host", help="default: PGHOST")
    restore.add_argument("--target-port", type=int, help="default: PGPORT")
    restore.add_argument("--force", action="store_true", help="replace the contents of a non-empty database")
    fetch = commands.add_parser("fetch", help="download a backup to a file, checking its checksum")
    fetch.add_argument("kind", choices=sorted(KINDS))
    fetch.add_argument("backup", nargs="?", help="a date (2026-11-20) or a key; default: the latest")
    fetch.add_argument("--to", required=True, type=Path, help="the file to write")
    status_parser = commands.add_parser("status", help="latest complete backups and their age")
    status_parser.add_argument("--json", action="store_true")
    commands.add_parser("healthcheck", help="exit 0 only while every backup is fresh")
    commands.add_parser("serve", help="run on schedule")
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock = utc_now, env: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        config = runner_config.load(env)
    except runner_config.ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.command == "healthcheck":
        healthy, why = healthcheck(config, clock)
        print(why)
        return 0 if healthy else 1
    if args.command == "serve":
        serve(config, make_store(config, postgres.KIND), make_store(config, "verify"), clock)
        return 0
    store = make_store(config, args.command)
    try:
        if args.command in KINDS:
            result: Any = run_backup(config, store, clock, args.command, args.reason)
        elif args.command == "verify":
            result = run_verify(config, store, clock, args.backup)
        elif args.command == "restore":
            result = postgres.restore(
                config,
                store,
                target_database=args.target_db,
                key_or_date=args.backup,
                force=args.force,
                target_host=args.target_host,
                target_port=args.target_port,
            )
        elif args.command == "fetch":
            result = fetch(config, store, args.kind, args.backup, args.to)
        elif args.command == "status":
            result = status(config, store, clock)
            if not args.json:
                for kind, found in result.items():
                    print(f"{kind:9} {found['key'] or 'NONE'}  age {found['age_hours']} h")
                return 0
        else:
            raise AssertionError(f"unhandled command {args.command}")
    except BackupError as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0
