"""`python -m runner COMMAND`: the runner's commands, for the container and for operators.

    postgres            dump PostgreSQL to S3 (daily/, and weekly/ monthly/ when first)
    influxdb            back up InfluxDB to S3 the same way
    verify [BACKUP]     restore drill: checksum, TOC, restore into a scratch database, compare
    restore --target-db DB [BACKUP] [--force]
                        restore the latest backup, or BACKUP (a date like 2026-11-20, or a key)
    fetch KIND [BACKUP] --to FILE
                        download a backup (checksum checked), for manual restores
    status [--json]     latest complete backup of each kind in the bucket, and its age
    pitr-backup full|diff
                        a pgBackRest backup to the PITR repository, then expire its window
    pitr-restore (--to TIME | --to-latest | --to-restore-point NAME) (--in-place | --scratch DIR)
                        restore PostgreSQL to a moment: in place (the server stopped: a delta
                        restore into its data directory) or into a scratch directory
    pitr-status         pgBackRest's backups and PostgreSQL's WAL archiving
    pitr-drill          the weekly PITR drill: restore to a fresh restore point, start, check
    seed [BACKUP]       (prod) the restore drill, then staging's seed from its verified copy:
                        masked by the rules, checked, dumped under staging-seed/ (also weekly,
                        after the scheduled drill, wherever a seed is configured)
    seed-load [SEED] [--stage | --swap | --undo]
                        (staging) restore the newest seed (or SEED) beside the live database
                        (--stage), make it the live one (--swap, the app stopped), or put the
                        previous data back (--undo); without a flag, --stage then --swap
    healthcheck         exit 0 only while every backup kind succeeded within the max age
    serve               run on schedule (the container's command)

Exit status: 0 on success, 1 when the operation failed (the message says why), 2 on bad
configuration or usage. Every backup and verify run writes a success or failure metric.
"""

from __future__ import annotations

import argparse
import dataclasses
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

from runner import config as runner_config
from runner import influxdb, metrics, pitr, pitr_drill, postgres, retention, staging_seed, state
from runner.config import RunnerConfig, Schedule
from runner.jobs import BackupError, Clock, checksum_mismatch, choose_backup, latest, utc_now
from runner.layout import BackupKey, stamp
from runner.storage import BackupStore, s3_client

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


def make_seed_store(config: RunnerConfig) -> BackupStore | None:
    """Where seeds go (prod: its own bucket, as the writer, under the seed's KMS key) or come
    from (staging: prod's bucket, as the seed reader); None where neither is configured."""
    part_size = config.part_size_mb * 1024 * 1024
    if config.seed_rules_file:
        client = _CLIENT_BUILDER.submit(s3_client, config.region, config.s3_endpoint, config.writer_profile)
        return BackupStore(client, config.bucket, part_size=part_size, kms_key_id=config.seed_kms_key_id)
    if config.seed_source_bucket:
        client = _CLIENT_BUILDER.submit(s3_client, config.region, config.s3_endpoint, config.seed_reader_profile)
        return BackupStore(client, config.seed_source_bucket, part_size=part_size)
    return None


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
    *,
    sleep: Callable[[float], None] = time.sleep,
    seed_store: BackupStore | None = None,
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
        # Where prod makes staging's seed, it is made from the weekly drill's verified copy.
        "verify": (
            config.verify_schedule,
            lambda: run_verify(config, reader, clock, None, seed_store=seed_store if config.seed_rules_file else None),
        ),
    }
    if config.pitr_full_schedule and config.pitr_diff_schedule:
        jobs["pitr-full"] = (config.pitr_full_schedule, lambda: run_pitr_backup(config, clock, "full", "scheduled"))
        jobs["pitr-diff"] = (config.pitr_diff_schedule, lambda: run_pitr_backup(config, clock, "diff", "scheduled"))
        if config.pitr_drill_schedule:
            jobs["pitr-drill"] = (config.pitr_drill_schedule, lambda: run_pitr_drill(config, clock))
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
    archiving_due = seed_age_due = clock()
    while not stop.requested:
        if config.pitr_full_schedule and clock() >= archiving_due:
            record_archiving(config, clock)
            archiving_due = clock() + timedelta(seconds=metrics.ARCHIVING_INTERVAL_SECONDS)
        if config.seed_source_bucket and clock() >= seed_age_due:
            record_seed_age(config, clock)
            seed_age_due = clock() + timedelta(seconds=metrics.SEED_AGE_INTERVAL_SECONDS)
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


def keep_copies(
    config: RunnerConfig, store: BackupStore, clock: Clock, kind: str, release_with: BackupStore | None = None
) -> None:
    """Extend the newest copies' locks, and with `release_with`, release the ones past their
    count (runner/retention.py)."""
    module = KINDS[kind]
    try:
        retention.enforce(
            store,
            config.retention,
            kind=kind,
            name=backup_name(config, kind),
            extension=module.EXTENSION,
            now=clock(),
            release_with=release_with,
        )
    except Exception:
        # Never hides the backup's own outcome; the next run tries again, well within a period.
        log.exception("keeping the %s copies by count failed", kind)


def release(config: RunnerConfig, store: BackupStore, clock: Clock) -> dict[str, Any]:
    """`release`, off the host: what every kind's tiers hold past their count and their lock is
    handed to the bucket's lifecycle (tagged), as an identity that may tag (BACKUP_RELEASE_PROFILE,
    or the default credentials): the writer on the host may not."""
    client = _CLIENT_BUILDER.submit(s3_client, config.region, config.s3_endpoint, config.release_profile)
    releaser = BackupStore(client, config.bucket, part_size=config.part_size_mb * 1024 * 1024)
    released: dict[str, Any] = {}
    for kind in backup_kinds(config):
        module = KINDS[kind]
        done = retention.enforce(
            store,
            config.retention,
            kind=kind,
            name=backup_name(config, kind),
            extension=module.EXTENSION,
            now=clock(),
            release_with=releaser,
        )
        released[kind] = {tier: [key.data for key in decision.release] for tier, decision in done.items()}
    return {"released": released}


def run_verify(
    config: RunnerConfig,
    store: BackupStore,
    clock: Clock,
    which: str | None,
    *,
    seed_store: BackupStore | None = None,
) -> dict[str, Any]:
    """The restore drill; with `seed_store`, staging's seed is made from its verified copy. A
    seed that fails is recorded as a failed seed run, never as a failed drill; a drill that
    fails is recorded as both (no seed this week)."""
    if seed_store is None:
        return run_recorded(
            config, "verify", "drill", clock, lambda: postgres.verify(config, store, clock, which).as_dict()
        )
    outcome: dict[str, Any] = {}

    def make_seed(scratch: str, source: BackupKey, source_manifest: dict[str, Any]) -> None:
        try:
            outcome["manifest"] = run_recorded(
                config,
                staging_seed.PRODUCE_KIND,
                "weekly",
                clock,
                lambda: staging_seed.produce(
                    config, seed_store, clock, scratch=scratch, source=source, source_manifest=source_manifest
                ),
            )
            metrics.write_rows(config, "produced", outcome["manifest"]["row_counts"], clock().timestamp())
        except Exception as error:  # recorded as the seed's failure; the drill passed regardless
            log.exception("making staging's seed failed")
            outcome["error"] = str(error)

    try:
        result = run_recorded(
            config,
            "verify",
            "drill",
            clock,
            lambda: postgres.verify(config, store, clock, which, then=make_seed).as_dict(),
        )
    except Exception as error:
        if not outcome:
            metrics.record(
                config,
                metrics.RunOutcome(staging_seed.PRODUCE_KIND, "weekly", False, 0.0, error=f"the drill failed: {error}"),
                clock().timestamp(),
            )
        raise
    result["staging_seed"] = outcome.get("manifest") or {"error": outcome.get("error", "not made")}
    return result


def run_seed(config: RunnerConfig, store: BackupStore, clock: Clock, which: str | None) -> dict[str, Any]:
    """`seed`: the drill and the seed now; fails when either does."""
    seed_store = make_seed_store(config)
    if seed_store is None or not config.seed_rules_file:
        raise BackupError("no seed is configured here: SEED_RULES_FILE and SEED_KEY_FILE are prod's")
    result = run_verify(config, store, clock, which, seed_store=seed_store)
    if "error" in result["staging_seed"]:
        raise BackupError(f"the drill passed, the seed failed: {result['staging_seed']['error']}")
    return result


def run_seed_load(config: RunnerConfig, clock: Clock, args: argparse.Namespace) -> dict[str, Any]:
    """`seed-load`: stage, swap or undo (runner/staging_seed.py); a load is recorded as one run."""
    if args.undo:
        result = staging_seed.undo(config, clock)
        record_seed_age(config, clock)
        return result
    seed_store = make_seed_store(config)
    if seed_store is None or not config.seed_source_bucket:
        raise BackupError("no seed source is configured here: SEED_SOURCE_BUCKET and SEED_SOURCE_DATABASE")

    def operation() -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not args.swap:
            result["staged"] = staging_seed.stage(config, seed_store, args.seed)
        if not args.stage:
            result["swapped"] = staging_seed.swap(config, clock)
            metrics.write_rows(config, "loaded", result["swapped"]["row_counts"], clock().timestamp())
            record_seed_age(config, clock)
        return result

    return run_recorded(config, staging_seed.LOAD_KIND, "manual", clock, operation)


def record_seed_age(config: RunnerConfig, clock: Clock) -> None:
    """How old staging's data is, as a metric (the `staging-data-stale` alert). Never raises."""
    try:
        found = staging_seed.seed_age_s(config, clock())
    except (OSError, KeyError, ValueError) as error:
        log.warning("could not read which seed staging runs on: %s", error)
        return
    metrics.write(config, metrics.seed_age_line(config.environment, found, clock().timestamp()), what="seed age")


# --- point-in-time recovery (runner/pitr.py) ------------------------------------------------------

PITR_KINDS = {"full": "pitr-full", "diff": "pitr-diff"}


def pgbackrest(config: RunnerConfig) -> pitr.PgBackRest:
    return pitr.PgBackRest(config.pitr_config_file, config.pitr_secrets_dir)


def run_pitr_backup(config: RunnerConfig, clock: Clock, kind: str, reason: str) -> dict[str, Any]:
    """A pgBackRest backup, then expire (the time window), recorded like every backup run."""

    def operation() -> dict[str, Any]:
        tool = pgbackrest(config)
        try:
            tool.backup(kind)
            tool.expire()
            info = tool.info()
        except pitr.PitrError as error:
            raise BackupError(str(error)) from error
        newest = pitr.backups(info)[-1]
        return {"key": f"pgbackrest/{newest['label']}", "type": newest["type"], "stop": newest["stop"]}

    return run_recorded(config, PITR_KINDS[kind], reason, clock, operation)


def parse_target(args: argparse.Namespace) -> pitr.Target:
    if args.to_latest:
        return pitr.Target.latest()
    if args.to_restore_point:
        return pitr.Target.name(args.to_restore_point)
    moment = datetime.fromisoformat(args.to)
    if moment.tzinfo is None:
        raise BackupError(f"--to {args.to!r}: give the time zone (2026-11-29T15:01:30+00:00), a restore is exact")
    return pitr.Target.time(moment)


def server_answers(config: RunnerConfig) -> bool:
    try:
        postgres.connect(config).close()
    except BackupError:
        return False
    return True


def pitr_restore(config: RunnerConfig, args: argparse.Namespace) -> dict[str, Any]:
    """In place: PostgreSQL must be stopped (its socket answers nothing), and pgBackRest rewrites
    only what differs (`--delta`). Into a scratch directory: nothing of the live server is touched."""
    target = parse_target(args)
    tool = pgbackrest(config)
    if args.in_place and server_answers(config):
        # pgBackRest refuses too (postmaster.pid); this says what to do about it.
        raise BackupError("PostgreSQL is running: stop it first (docs/backup-restore.md), a restore replaces its files")
    pg_path = None if args.in_place else str(args.scratch)
    try:
        tool.restore(target, pg_path=pg_path, delta=args.in_place)
    except pitr.PitrError as error:
        raise BackupError(str(error)) from error
    where = "the data directory (in place)" if args.in_place else str(args.scratch)
    return {"restored_into": where, "target": target.kind, "value": target.value}


def pitr_status(config: RunnerConfig, clock: Clock) -> dict[str, Any]:
    tool = pgbackrest(config)
    try:
        info = tool.info()
    except pitr.PitrError as error:
        raise BackupError(str(error)) from error
    with postgres.connect(config) as connection:
        archiving = pitr.archiver_status(connection)
    now = clock().timestamp()
    last = {kind: pitr.last_backup_stop(info, kind) for kind in ("full", "diff")}
    return {
        "backups": pitr.backups(info),
        "age_hours": {kind: round((now - stop) / 3600, 2) if stop else None for kind, stop in last.items()},
        "archiving": dataclasses.asdict(archiving),
    }


def run_pitr_drill(config: RunnerConfig, clock: Clock) -> dict[str, Any]:
    """The weekly PITR drill (runner/pitr_drill.py), recorded like every run (kind pitr-drill)."""

    def operation() -> dict[str, Any]:
        tool = pgbackrest(config)
        point = postgres.restore_point(config, f"pitr-drill-{stamp(clock())}")
        try:
            tool.check()  # the segment holding the point is archived before the restore needs it
            result = pitr_drill.drill(
                tool,
                scratch=config.state_dir / "pitr-drill",
                database=config.pg_database,
                restore_point=point,
                user=pitr.pg_user_of(config.pitr_config_file),
            )
        except pitr.PitrError as error:
            raise BackupError(str(error)) from error
        return result.as_dict()

    return run_recorded(config, "pitr-drill", "drill", clock, operation)


def record_archiving(config: RunnerConfig, clock: Clock) -> None:
    """pg_stat_archiver as a metric: what the `pitr-archiving` alert reads. Never raises."""
    try:
        with postgres.connect(config) as connection:
            status = pitr.archiver_status(connection)
    except Exception as error:  # noqa: BLE001 (the database down is the container rules' to report)
        log.warning("could not read pg_stat_archiver: %s", error)
        return
    metrics.write(config, metrics.archiving_line(config.environment, status, clock().timestamp()), what="archiving")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runner", description="audit-x backups: PostgreSQL and InfluxDB to S3."
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
    pitr_backup = commands.add_parser("pitr-backup", help="a pgBackRest backup, then expire")
    pitr_backup.add_argument("type", choices=sorted(PITR_KINDS))
    pitr_backup.add_argument("--reason", default="manual", help="recorded in the metric")
    restore_pitr = commands.add_parser("pitr-restore", help="restore PostgreSQL to a moment")
    target = restore_pitr.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", help="a moment with its time zone: 2026-11-29T15:01:30+00:00")
    target.add_argument("--to-latest", action="store_true", help="the end of the archived WAL")
    target.add_argument("--to-restore-point", help="a restore point (pg_create_restore_point)")
    where = restore_pitr.add_mutually_exclusive_group(required=True)
    where.add_argument("--in-place", action="store_true", help="into the data directory; PostgreSQL stopped")
    where.add_argument("--scratch", type=Path, help="an empty directory, to look at the past beside prod")
    commands.add_parser("pitr-status", help="pgBackRest's backups and WAL archiving")
    commands.add_parser("pitr-drill", help="restore to a fresh restore point in a scratch directory, and check it")
    seed_parser = commands.add_parser("seed", help="(prod) the restore drill, then staging's seed from its copy")
    seed_parser.add_argument("backup", nargs="?", help="a date (2026-11-20) or a key; default: the latest")
    seed_load = commands.add_parser("seed-load", help="(staging) load prod's newest seed")
    seed_load.add_argument("seed", nargs="?", help="a seed's key or stamp; default: the newest")
    step = seed_load.add_mutually_exclusive_group()
    step.add_argument("--stage", action="store_true", help="only restore it beside the live database")
    step.add_argument("--swap", action="store_true", help="only make the staged seed the live database")
    step.add_argument("--undo", action="store_true", help="put the data from before the last swap back")
    commands.add_parser("release", help="(off the host) free the copies past their count and their lock")
    commands.add_parser("healthcheck", help="exit 0 only while every backup is fresh")
    commands.add_parser("serve", help="run on schedule")
    return parser


def run_command(args: argparse.Namespace, config: RunnerConfig, store: BackupStore, clock: Clock) -> Any:
    """Every command but `serve` and `healthcheck`: its result, printed as JSON."""
    if args.command in KINDS:
        return run_backup(config, store, clock, args.command, args.reason)
    commands: dict[str, Callable[[], Any]] = {
        "verify": lambda: run_verify(config, store, clock, args.backup),
        "restore": lambda: postgres.restore(
            config,
            store,
            target_database=args.target_db,
            key_or_date=args.backup,
            force=args.force,
            target_host=args.target_host,
            target_port=args.target_port,
        ),
        "fetch": lambda: fetch(config, store, args.kind, args.backup, args.to),
        "status": lambda: status(config, store, clock),
        "pitr-backup": lambda: run_pitr_backup(config, clock, args.type, args.reason),
        "pitr-restore": lambda: pitr_restore(config, args),
        "pitr-status": lambda: pitr_status(config, clock),
        "pitr-drill": lambda: run_pitr_drill(config, clock),
        "seed": lambda: run_seed(config, store, clock, args.backup),
        "seed-load": lambda: run_seed_load(config, clock, args),
        "release": lambda: release(config, store, clock),
    }
    return commands[args.command]()


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
        serve(
            config,
            make_store(config, postgres.KIND),
            make_store(config, "verify"),
            clock,
            seed_store=make_seed_store(config),
        )
        return 0
    store = make_store(config, args.command)
    try:
        if args.command == "status" and not args.json:
            for kind, found in status(config, store, clock).items():
                print(f"{kind:9} {found['key'] or 'NONE'}  age {found['age_hours']} h")
            return 0
        result = run_command(args, config, store, clock)
    except BackupError as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0
