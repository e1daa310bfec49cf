"""Benchmark staging's seed against the restore drill it follows, in one run, on loopback.

    python -m bench.seed --size-mb 1024 [--json]

Builds the audit-like data set of about N MB (harness/audit_dataset.py) in a throwaway PostgreSQL
started with prod's server flags (memory, logging),
backs it up to moto's S3 server with the runner's own `postgres` command, then runs the runner's
`seed` command (the weekly restore drill, then the seed from its verified copy, as prod's runner
does every Sunday) and reports, from that one run:

    db_mb               the database's size
    drill_s             the restore drill: checksum, TOC, restore into a scratch database, counts
    seed_s              masking, checking and dumping the seed (mask_s + check_s + dump_s)
    seed_ratio          seed_s / drill_s (goal: at most 0.5 at 1 GB, the seed adds at most half)
    mask_s, check_s, dump_s   its parts
    masked_rows_per_s   rows the masking UPDATEs wrote, per second of mask_s
    dump_mb             the logical backup the drill restored (pg_dump -Fc)
    seed_mb             the seed (pg_dump -Fc --compress=1 of the masked copy)
    leaks               original values of masked columns found anywhere in the seed (every
                        email, name, organisation name, token digest of the source, and up to
                        20,000 of its IP addresses and user agents): must be 0
    wal_mb              WAL the server wrote for the drill, and for the seed besides: on prod's
                        server both reach the PITR repository (pgBackRest archives all WAL)
    mask_strategies     the masking alone on fresh copies: the runner's rewrite against an UPDATE
                        of every row (the baseline), each with its time and WAL
    cpu_s               CPU seconds of the runner's process and of PostgreSQL's, during the
                        `seed` command (drill and seed), and of pg_dump and pg_restore: what this
                        two-core machine spends on each side

The last line with --json is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg

from components.data.postgres import server_flags
from components.settings import load_settings
from harness import audit_dataset
from harness.local_services import PostgresCluster, postgres_bindir, postgres_cluster, s3_server
from harness.mock_engine import load_stack_config
from runner import seed
from runner.cli import main as runner

DATABASE = "audit_x_bench"
PASSWORD = "BenchSeedPassword0123456789abcdefghijk"
BUCKET = "audit-x-bench-seed"
MASKING_KEY = "bench-masking-key-0123456789abcdefghijklmnopqrstuvwxyz0123"


@contextlib.contextmanager
def environment(work: Path, pg: PostgresCluster, endpoint: str) -> Iterator[dict[str, str]]:
    """The runner's environment, as the Pulumi program sets it in prod (seed rules and key)."""
    (work / "pgpassword").write_text(PASSWORD)
    (work / "masking-key").write_text(MASKING_KEY)
    (work / "rules.json").write_text(json.dumps(audit_dataset.MASKING_RULES))
    yield {
        "BACKUP_ENVIRONMENT": "bench",
        "BACKUP_BUCKET": BUCKET,
        "BACKUP_STATE_DIR": str(work / "state"),
        "AWS_REGION": "eu-west-1",
        "S3_ENDPOINT_URL": endpoint,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGUSER": "audit_x",
        "PGDATABASE": DATABASE,
        "PGPASSWORD_FILE": str(work / "pgpassword"),
        "BACKUP_SCHEDULE_INFLUXDB": "off",
        "SEED_RULES_FILE": str(work / "rules.json"),
        "SEED_KEY_FILE": str(work / "masking-key"),
    }


def run_runner(env: dict[str, str], *argv: str) -> dict[str, Any]:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = runner(list(argv), env=env)
    if code != 0:
        raise SystemExit(f"`python -m runner {' '.join(argv)}` exited {code}")
    return json.loads(output.getvalue())


def postgres_cpu_s(pg: PostgresCluster) -> float:
    """CPU seconds of the server: its postmaster with every child it has reaped (each connection's
    backend exits with its connection) and the children still running."""
    ticks = os.sysconf("SC_CLK_TCK")
    postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])

    def stat(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    fields = stat(postmaster)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        with contextlib.suppress(OSError):
            fields = stat(int(child))
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def originals(dsn: str) -> list[str]:
    with psycopg.connect(dsn, password=PASSWORD) as connection:
        return [
            value
            for (value,) in connection.execute(
                "SELECT email FROM users UNION ALL SELECT full_name FROM users "
                "UNION ALL SELECT name FROM organizations UNION ALL SELECT digest FROM api_tokens "
                "UNION ALL (SELECT DISTINCT host(ip) FROM audit_events WHERE ip IS NOT NULL LIMIT 20000) "
                "UNION ALL (SELECT user_agent FROM audit_events WHERE user_agent IS NOT NULL LIMIT 20000)"
            ).fetchall()
        ]


def leaks_in(seed_dump: Path, values: list[str], work: Path) -> int:
    """How many of `values` appear anywhere in the seed, restored to SQL text and scanned whole by
    `grep -F` (Aho-Corasick over every value at once: one pass, not one per value)."""
    text, patterns = work / "seed.sql", work / "originals.txt"
    with text.open("wb") as out:
        subprocess.run(
            [str(postgres_bindir() / "pg_restore"), "--file=-", str(seed_dump)], check=True, stdout=out, timeout=1800
        )
    patterns.write_text("\n".join(sorted(set(values))) + "\n")
    found = subprocess.run(
        ["grep", "--fixed-strings", "--only-matching", f"--file={patterns}", str(text)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if found.returncode not in (0, 1):  # 1: nothing matched
        raise SystemExit(f"grep failed: {found.stderr}")
    return len(set(found.stdout.split("\n")) - {""})


def wal_lsn(pg: PostgresCluster) -> str:
    return pg.psql("SELECT pg_current_wal_lsn()").strip()


def wal_mb_since(pg: PostgresCluster, lsn: str) -> float:
    return round(float(pg.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')").strip()) / 2**20, 1)


def mask_strategies(pg: PostgresCluster) -> dict[str, Any]:
    """The masking alone, on two fresh copies of the source: the rewrite the runner does, and an
    UPDATE of every row (the baseline, and the runner's fallback where a view blocks a rewrite)."""
    rules = seed.parse_rules(audit_dataset.MASKING_RULES)
    figures: dict[str, Any] = {}
    for strategy in ("rewrite", "update"):
        copy = f"mask_{strategy}"
        pg.psql(f"CREATE DATABASE {copy} TEMPLATE {DATABASE}")
        with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=audit_x dbname={copy}", password=PASSWORD) as c:
            c.autocommit = True
            lsn = wal_lsn(pg)
            started = time.monotonic()
            seed.mask(c, rules, MASKING_KEY, rewrite=strategy == "rewrite")
            figures[strategy] = {"s": round(time.monotonic() - started, 2), "wal_mb": wal_mb_since(pg, lsn)}
        pg.psql(f"DROP DATABASE {copy}")
    figures["update_over_rewrite_s"] = round(figures["update"]["s"] / figures["rewrite"]["s"], 2)
    return figures


def prod_server_flags() -> list[str]:
    """`name=value` of each `-c` flag prod's PostgreSQL runs with."""
    return server_flags(load_settings(load_stack_config("prod")).postgres)[2::2]


def run(size_mb: int) -> dict[str, Any]:
    # This process runs the runner: pg_dump and pg_restore of the server's version, moto's keys.
    os.environ["PATH"] = f"{postgres_bindir()}:{os.environ['PATH']}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with (
        tempfile.TemporaryDirectory(prefix="audit-x-bench-seed-") as tmp,
        # The server as prod runs it: its memory and logging flags (components/data/postgres.py).
        postgres_cluster(prod_server_flags()) as pg,
        s3_server() as endpoint,
    ):
        work = Path(tmp)
        pg.psql(f"CREATE ROLE audit_x LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        pg.psql(f"CREATE DATABASE {DATABASE} OWNER audit_x")
        dsn = f"host=127.0.0.1 port={pg.port} user=audit_x dbname={DATABASE}"
        built = audit_dataset.build(dsn, size_mb, password=PASSWORD)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with environment(work, pg, endpoint) as env:
            backup = run_runner(env, "postgres")
            # The drill alone first: the WAL it makes on the server (archived by pgBackRest in prod).
            lsn = wal_lsn(pg)
            run_runner(env, "verify")
            drill_wal_mb = wal_mb_since(pg, lsn)
            lsn = wal_lsn(pg)
            runner_cpu, pg_cpu = resource.getrusage(resource.RUSAGE_SELF), postgres_cpu_s(pg)
            tools_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            result = run_runner(env, "seed")
            total_s = time.monotonic() - started
            runner_after = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            pg_cpu = postgres_cpu_s(pg) - pg_cpu
            seed_wal_mb = round(wal_mb_since(pg, lsn) - drill_wal_mb, 1)
        strategies = mask_strategies(pg)
        made = result["staging_seed"]
        timings = made["timings_s"]
        seed_s = timings["mask_s"] + timings["check_s"] + timings["dump_s"]
        drill_s = total_s - seed_s
        seed_file = work / "seed.dump"
        s3.download_file(BUCKET, made["key"], str(seed_file))
        figures = {
            "size_mb_requested": size_mb,
            "db_mb": built["size_mb"],
            "drill_s": round(drill_s, 2),
            "seed_s": round(seed_s, 2),
            "seed_ratio": round(seed_s / drill_s, 3),
            **{name: round(value, 2) for name, value in timings.items()},
            "masked_rows_per_s": round(sum(made["masked_rows"].values()) / timings["mask_s"]),
            "dump_mb": round(backup["size_bytes"] / 2**20, 1),
            "seed_mb": round(made["size_bytes"] / 2**20, 1),
            "leaks": leaks_in(seed_file, originals(dsn), work),
            "wal_mb": {"drill": drill_wal_mb, "seed": seed_wal_mb},
            "mask_strategies": strategies,
            "cpu_s": {
                "runner": round(
                    runner_after.ru_utime + runner_after.ru_stime - runner_cpu.ru_utime - runner_cpu.ru_stime, 1
                ),
                # pg_dump and pg_restore, started by the runner
                "dump_and_restore_tools": round(
                    children.ru_utime + children.ru_stime - tools_cpu.ru_utime - tools_cpu.ru_stime, 1
                ),
                "postgres": round(pg_cpu, 1),
            },
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed", description="Benchmark the staging seed.")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.size_mb)
    for name, value in figures.items():
        print(f"{name:20} {value}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
