"""Every run's outcome as a point in the environment's InfluxDB, for dashboards and alerts.

    audit_x_backup,environment=prod,kind=postgres,reason=scheduled,outcome=success
        success=1i,duration_s=41.2,size_bytes=734003200i,age_s=0i <unix seconds>

`kind` is postgres, influxdb or verify. A failed run writes success=0i. Writing a metric never
fails a backup: if InfluxDB is down the point is logged and dropped (the backup-age alert still
fires, from the absence of fresh success points).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from runner.config import RunnerConfig
from runner.pitr import ArchiverStatus

log = logging.getLogger("backup.metrics")
MEASUREMENT = "audit_x_backup"
PITR_MEASUREMENT = "audit_x_pitr"
SEED_MEASUREMENT = "audit_x_seed"
# How often staging's runner reports the age of the data it runs on (the staging-data-stale alert).
SEED_AGE_INTERVAL_SECONDS = 600
# How often the runner reads pg_stat_archiver into PITR_MEASUREMENT (its alert's first delay).
ARCHIVING_INTERVAL_SECONDS = 60


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@dataclass(frozen=True)
class RunOutcome:
    kind: str
    reason: str
    success: bool
    duration_s: float
    size_bytes: int = 0
    error: str = ""

    def line(self, environment: str, at: float | None = None) -> str:
        tags = {
            "environment": environment,
            "kind": self.kind,
            "reason": self.reason,
            "outcome": "success" if self.success else "failure",
        }
        tag_text = ",".join(f"{k}={_escape_tag(v)}" for k, v in tags.items())
        fields = f"success={int(self.success)}i,duration_s={self.duration_s:.3f},size_bytes={self.size_bytes}i"
        return f"{MEASUREMENT},{tag_text} {fields} {int(at if at is not None else time.time())}"


def record(config: RunnerConfig, outcome: RunOutcome, at: float | None = None) -> bool:
    """Write the outcome to InfluxDB, stamped `at` (Unix seconds, default now); True when accepted."""
    return write(config, outcome.line(config.environment, at), what=f"the {outcome.kind} metric")


def archiving_line(environment: str, status: ArchiverStatus, now: float) -> str:
    """PostgreSQL's WAL archiving as pg_stat_archiver reports it, for the `pitr-archiving` alert:

        audit_x_pitr,environment=prod archived_count=..i,failed_count=..i,failing=0i,
            segments_waiting=0i,last_archived_age_s=12.0 <unix seconds>

    `last_archived_age_s` is -1 before the first segment was ever archived.
    """
    age = now - status.last_archived_at if status.last_archived_at is not None else -1.0
    fields = (
        f"archived_count={status.archived_count}i,failed_count={status.failed_count}i,"
        f"failing={int(status.failing)}i,segments_waiting={status.segments_waiting}i,last_archived_age_s={age:.1f}"
    )
    return f"{PITR_MEASUREMENT},environment={_escape_tag(environment)} {fields} {int(now)}"


def seed_age_line(environment: str, found: tuple[float, str] | None, now: float) -> str:
    """How old staging's data is: since prod made the seed it was loaded from, -1 before any load.

    audit_x_seed,environment=staging,role=running seed_age_s=86400.0 <unix seconds>
    """
    age = found[0] if found else -1.0
    return f"{SEED_MEASUREMENT},environment={_escape_tag(environment)},role=running seed_age_s={age:.1f} {int(now)}"


def rows_lines(environment: str, role: str, row_counts: dict[str, int], now: float) -> list[str]:
    """Rows per table of a seed made (role=produced) or loaded (role=loaded), one point each:

    audit_x_seed,environment=prod,role=produced,table=public.users rows=2000i <unix seconds>
    """
    tags = f"environment={_escape_tag(environment)},role={role}"
    return [
        f"{SEED_MEASUREMENT},{tags},table={_escape_tag(table)} rows={rows}i {int(now)}"
        for table, rows in sorted(row_counts.items())
    ]


def write_rows(config: RunnerConfig, role: str, row_counts: dict[str, int], now: float) -> bool:
    lines = rows_lines(config.environment, role, row_counts, now)
    return bool(lines) and write(config, "\n".join(lines), what=f"the seed's rows ({role})")


def write(config: RunnerConfig, line: str, *, what: str) -> bool:
    """One line of line protocol to the metrics bucket; never raises (a backup never fails on it)."""
    if not (config.influx_url and config.influx_token and config.influx_org and config.influx_metrics_bucket):
        log.info("no InfluxDB configured; metric not written: %s", line)
        return False
    query = urllib.parse.urlencode({"org": config.influx_org, "bucket": config.influx_metrics_bucket, "precision": "s"})
    request = urllib.request.Request(
        f"{config.influx_url.rstrip('/')}/api/v2/write?{query}",
        data=line.encode(),
        method="POST",
        headers={"Authorization": f"Token {config.influx_token}", "Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except OSError as error:
        log.warning("could not write %s to InfluxDB: %s", what, error)
        return False
