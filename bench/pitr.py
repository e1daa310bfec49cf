"""Benchmark point-in-time recovery against the logical dumps, in one run, on loopback.

    python -m bench.pitr --size-mb 512 [--repeat K] [--json]

Builds the audit-like data set of about N MB (harness/audit_dataset.py, as the logical benchmark)
in a cluster archiving through pgBackRest to moto's S3 behind TLS (harness/pitr_rig.py), then
measures, in the same run:

    db_mb               the database's size
    full_backup_s       a full pgBackRest backup to the S3 repository
    pg_dump_s           pg_dump -Fc of the same database to a local file
    restore_s           a restore to a time just after the full backup, into a scratch directory,
                        up to a server that has reached the target and answers (physical)
    logical_restore_s   pg_restore of that dump into a new database (the logical way back)
    restore_ratio       restore_s / logical_restore_s
    restore_local_repo_s  the same restore from a repository on local disk (repo1-type=posix):
                        pgBackRest's own cost, without the S3 server sharing this machine's cores
    rpo_s               with archive_timeout at prod's 60 s: a row is written every second, the
                        server is killed (-9), the latest archived state is restored, and the age
                        of the newest row lost at the moment of the loss is reported
    peak_rss_mb         the largest resident memory of pgBackRest (its backup and restore
                        commands, their worker processes included)
    verified            the restored databases hold the rows the source held at the target
    rto_estimate_min    restore time scaled to `pitr.expectedDatabaseGb` of prod's config, at the
                        rate measured here (a linear estimate, stated as one)

With --repeat K, each timing is the median of K runs. The last line with --json is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import psycopg

from components.settings import load_settings
from harness import audit_dataset
from harness.local_services import _as_postgres_user, postgres_bindir
from harness.mock_engine import load_stack_config
from harness.pitr_rig import Rig, pitr_rig, restored
from runner import pitr

DATABASE = "audit_x_bench"
# Prod's queue cap (pitr.archiveQueueMaxMb): a smaller one drops WAL in the bursts a 1 GB
# DELETE makes while the push to this machine's S3 server lags, and the restore then stops short.
QUEUE_MAX_MB = 4096
# Runs a command and appends the peak RSS (kB) of its process tree to a file: pgBackRest's own
# memory, apart from the S3 server and PostgreSQL sharing the machine.
MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'a').write(f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)


def measured(rig: Rig) -> pitr.PgBackRest:
    """pgBackRest for `rig`, each command's peak RSS recorded in the rig's `rss` file."""
    prefix = [sys.executable, "-c", MEASURED, str(rig.work / "rss"), *_as_postgres_user([])]
    return pitr.PgBackRest(str(rig.config), str(rig.work / "conf.d"), prefix=prefix)


def peak_rss_mb(*rigs: Rig) -> float:
    values = [int(v) for rig in rigs if (rig.work / "rss").exists() for v in (rig.work / "rss").read_text().split()]
    return round(max(values, default=0) / 1024, 1)


def timed(action: Any) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def dsn(rig: Rig, database: str = DATABASE) -> str:
    return f"host={rig.pg.datadir} port={rig.pg.port} user=postgres dbname={database}"


def count_events(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT count(*) FROM audit_events").fetchone()
    return int(row[0]) if row else -1


def restore_seconds(rig: Rig, target: pitr.Target, expected_events: int) -> tuple[float, bool]:
    """From the newest full backup (named: what is measured is that backup plus its WAL)."""
    newest_full = [b["label"] for b in pitr.backups(rig.pgbackrest.info()) if b["type"] == "full"][-1]
    started = time.monotonic()
    with restored(rig, target, database=DATABASE, tool=measured(rig), backup_set=newest_full) as connection:
        elapsed = time.monotonic() - started
        return elapsed, count_events(connection) == expected_events


def logical_round(rig: Rig, work: Path) -> tuple[float, float, int]:
    """pg_dump -Fc to a file, then pg_restore into a new database; returns both times and the
    restored event count."""
    dump = work / "bench.dump"
    bindir = postgres_bindir()
    pg_dump_s = timed(
        lambda: subprocess.run(
            _as_postgres_user([str(bindir / "pg_dump"), "-Fc", "-f", str(dump), dsn(rig)]), check=True, timeout=3600
        )
    )
    target = f"restored_{time.monotonic_ns()}"
    rig.sql(f"CREATE DATABASE {target}")
    logical_s = timed(
        lambda: subprocess.run(
            _as_postgres_user([str(bindir / "pg_restore"), "--no-owner", "-d", dsn(rig, target), str(dump)]),
            check=True,
            timeout=3600,
        )
    )
    with psycopg.connect(dsn(rig, target)) as connection:
        events = count_events(connection)
    rig.sql(f"DROP DATABASE {target}")
    dump.unlink()
    return pg_dump_s, logical_s, events


def measure_rpo(seconds: int = 75) -> float:
    """Write a row a second with prod's archive_timeout, kill the server, restore the latest."""
    with pitr_rig(archive_timeout_seconds=60, queue_max_mb=QUEUE_MAX_MB) as rig:
        rig.sql("CREATE TABLE heartbeat (at timestamptz PRIMARY KEY)")
        stop = threading.Event()

        def write() -> None:
            with psycopg.connect(dsn(rig, "postgres"), autocommit=True) as connection:
                while not stop.is_set():
                    connection.execute("INSERT INTO heartbeat VALUES (clock_timestamp())")
                    time.sleep(1)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        time.sleep(seconds)
        lost_at = datetime.now(UTC)
        stop.set()
        pid = int((rig.pg.datadir / "postmaster.pid").read_text().split()[0])
        subprocess.run(["kill", "-9", str(pid)], check=True)  # the host is gone
        writer.join(timeout=5)
        with restored(rig, pitr.Target.latest()) as connection:
            row = connection.execute("SELECT max(at) FROM heartbeat").fetchone()
        newest = row[0] if row and row[0] else lost_at - timedelta(seconds=seconds)
        return (lost_at - newest).total_seconds()


def run(size_mb: int, repeat: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    verified = True
    rss = 0.0
    with pitr_rig(queue_max_mb=QUEUE_MAX_MB) as rig:
        rig.sql(f"CREATE DATABASE {DATABASE}")
        built = audit_dataset.build(dsn(rig), size_mb)
        for _ in range(repeat):
            with psycopg.connect(dsn(rig)) as connection:
                expected = count_events(connection)
            # The logical way, on the same database: dump, and restore into a new one.
            pg_dump_s, logical_s, events = logical_round(rig, rig.work)
            verified &= events == expected
            results.setdefault("pg_dump_s", []).append(pg_dump_s)
            results.setdefault("logical_restore_s", []).append(logical_s)
            # The physical way: a full backup, then a restore to a moment after it, before a
            # destructive change.
            results.setdefault("full_backup_s", []).append(timed(lambda: measured(rig).backup("full")))
            rig.archived_through(timeout=600)
            target = rig.now()
            time.sleep(1.1)
            rig.sql("DELETE FROM audit_events WHERE id % 97 = 0", database=DATABASE)
            rig.archived_through(timeout=600)
            restore_s, ok = restore_seconds(rig, pitr.Target.time(target), expected)
            verified &= ok
            results.setdefault("restore_s", []).append(restore_s)
        rss = max(rss, peak_rss_mb(rig))
    with pitr_rig(repository="posix", queue_max_mb=QUEUE_MAX_MB) as local:
        local.sql(f"CREATE DATABASE {DATABASE}")
        audit_dataset.build(dsn(local), size_mb)
        with psycopg.connect(dsn(local)) as connection:
            expected = count_events(connection)
        local.pgbackrest.backup("full")
        local.archived_through(timeout=600)
        for _ in range(repeat):
            seconds, ok = restore_seconds(local, pitr.Target.latest(), expected)
            verified &= ok
            results.setdefault("restore_local_repo_s", []).append(seconds)
        rss = max(rss, peak_rss_mb(local))
    rpo_s = measure_rpo()
    timings = {name: round(median(values), 2) for name, values in results.items()}
    expected_gb = load_settings(load_stack_config("prod")).pitr.expected_database_gb
    db_mb = float(built["size_mb"])
    rate_mb_s = db_mb / timings["restore_s"]
    return {
        "db_mb": db_mb,
        **timings,
        "restore_ratio": round(timings["restore_s"] / timings["logical_restore_s"], 3),
        "rpo_s": round(rpo_s, 1),
        "peak_rss_mb": rss,
        "verified": verified,
        "restore_mb_per_s": round(rate_mb_s, 1),
        "expected_database_gb": expected_gb,
        "rto_estimate_min": round(expected_gb * 1024 / rate_mb_s / 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pitr", description="Benchmark PITR.")
    parser.add_argument("--size-mb", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    figures = run(args.size_mb, args.repeat)
    for name, value in figures.items():
        print(f"{name:24} {value}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
