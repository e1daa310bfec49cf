"""The weekly point-in-time-recovery drill: proof that the repository restores, not a hope.

The runner writes a restore point in the live database (`pitr-drill-<stamp>`) and waits until
its WAL is archived; the drill restores the latest backups and the archived WAL up to that
point into a scratch directory, starts a temporary server there on a private socket (no TCP, no
archiving), and checks that it got there (PostgreSQL refuses to start when recovery ends before
its target, so a start is the proof), that every table reads (row counts) and that indexes and
heap are sound (pg_amcheck), then stops and removes it. A named point rather than a time: on a
quiet database no commit may follow a time target, and recovery could not prove it reached it.
The runner records the outcome and the time it took as a metric, like every run (kind
`pitr-drill`): a failed drill warns (the `backup-failed` rule).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from runner.pitr import PgBackRest, PitrError, Target

DRILL_PORT = 5499
# What a server replaying WAL needs at least as high as the primary had them (PostgreSQL aborts
# recovery otherwise: "recovery aborted because of insufficient parameter settings"), as
# pg_controldata names them, and their settings' names.
STANDBY_PARAMETERS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}


def standby_options(controldata: str) -> str:
    """`-c` options giving a restored cluster the primary's values, from its pg_controldata."""
    values = {}
    for line in controldata.splitlines():
        label, _, value = line.partition(":")
        if label.strip() in STANDBY_PARAMETERS and value.strip().isdigit():
            values[STANDBY_PARAMETERS[label.strip()]] = value.strip()
    return " ".join(f"-c {name}={value}" for name, value in values.items())


@dataclass(frozen=True)
class DrillResult:
    target: str
    tables: int
    rows: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "tables": self.tables,
            "rows": self.rows,
            "seconds": round(self.seconds, 1),
        }


def drill(
    tool: PgBackRest,
    *,
    scratch: Path,
    database: str,
    restore_point: str,
    user: str = "postgres",
    port: int = DRILL_PORT,
) -> DrillResult:
    """Raise PitrError with what failed; the scratch directory is removed either way. `user`: a
    role of the restored cluster (its bootstrap superuser; the scratch socket trusts it)."""
    started = time.monotonic()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700, parents=True)
    if tool.prefix:  # run as root in a test: the directory is the database user's
        shutil.chown(scratch, "postgres", "postgres")

    pg_ctl = "pg_ctl"  # the server's own binaries, on the runner's PATH
    log = scratch / "drill.log"
    try:
        tool.restore(Target.name(restore_point), pg_path=str(scratch))
        controldata = subprocess.run(
            tool.as_database_user(["pg_controldata", str(scratch)]), capture_output=True, text=True, check=True
        ).stdout
        options = f"-p {port} -k {scratch} -c listen_addresses='' -c archive_mode=off {standby_options(controldata)}"
        _run(tool, [pg_ctl, "-D", str(scratch), "-o", options, "-l", str(log), "-w", "-t", "3600", "start"], "start")
        try:
            tables, rows = _read_everything(scratch, port, database, user)
        except psycopg.Error as error:
            raise PitrError(f"the restored server failed: {str(error).strip()}; its log: {_tail(log)}") from error
        amcheck = ["pg_amcheck", "--all", "--install-missing", "-h", str(scratch), "-p", str(port)]
        _run(tool, [*amcheck, "-U", user], "pg_amcheck")
        return DrillResult(restore_point, tables, rows, time.monotonic() - started)
    finally:
        stop = tool.as_database_user([pg_ctl, "-D", str(scratch), "-m", "immediate", "stop"])
        subprocess.run(stop, capture_output=True, timeout=120, check=False)  # gone already is fine
        shutil.rmtree(scratch, ignore_errors=True)


def _read_everything(scratch: Path, port: int, database: str, user: str) -> tuple[int, int]:
    """Once recovery is over: how many tables, and the rows of all of them (each one read)."""
    with psycopg.connect(host=str(scratch), port=port, user=user, dbname=database, autocommit=True) as conn:
        deadline = time.monotonic() + 3600
        while conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
            if time.monotonic() > deadline:
                raise PitrError("the restored server never finished recovery")
            time.sleep(0.5)
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchall()
        rows = 0
        for schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            counted = conn.execute(query).fetchone()
            rows += int(counted[0]) if counted else 0
        return len(tables), rows


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "none"


def _run(tool: PgBackRest, argv: list[str], what: str) -> None:
    result = subprocess.run(tool.as_database_user(argv), capture_output=True, text=True, timeout=7200, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PitrError(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")
