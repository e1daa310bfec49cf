"""The platform dashboard, rendered as Grafana dashboard JSON from the same signals the alerts read.

One screen for the on-call engineer: what is down or unhealthy, what restarts, whether the web
role answers, how far the consumers lag, what errors the app logs, CPU, memory, disk, backups.
Each panel shows the alert thresholds it belongs to, so a line crossing red is a page.
"""

from __future__ import annotations

import json
from typing import Any

from components.observability.alerting import DATASOURCE_UIDS, STAGING_DATA_MAX_AGE_DAYS
from components.observability.signals import LOKI, Query, Scope
from components.settings import Settings, Tiers
from runner.metrics import SEED_AGE_INTERVAL_SECONDS

WIDTH = 24  # Grafana's grid is 24 columns wide
HOUR = 3600


def _target(query: Query) -> dict[str, Any]:
    if query.datasource == LOKI:
        return {"refId": "A", "expr": query.text, "queryType": "range"}
    return {"refId": "A", "query": query.text}


def _thresholds(tiers: Tiers | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if tiers is not None:
        steps += [{"color": "orange", "value": tiers.warning}, {"color": "red", "value": tiers.critical}]
    return {"mode": "absolute", "steps": steps}


def dashboard(settings: Settings) -> dict[str, Any]:
    scope = Scope(settings.environment, settings.influxdb.bucket)
    thresholds = settings.alerting.thresholds
    six_hours = 6 * HOUR
    # (title, panel type, query, unit, thresholds, width)
    rows: list[tuple[str, str, Query, str, Tiers | None, int]] = [
        ("Containers not running (1 = down)", "stat", scope.containers_not_running(60), "none", None, 8),
        ("Containers unhealthy (1 = failing check)", "stat", scope.containers_unhealthy(60), "none", None, 8),
        ("Restarts in the last 15 minutes", "stat", scope.container_restarts(900), "none", thresholds.restarts, 8),
        (
            "Web /health probes failing (%)",
            "stat",
            scope.probe_failure_percent(60),
            "percent",
            thresholds.probe_failure_percent,
            12,
        ),
        ("Web probe latency (s, max per minute)", "timeseries", scope.probe_latency_seconds(six_hours), "s", None, 12),
        ("Consumer group lag (max partition)", "stat", scope.consumer_lag(60), "none", thresholds.consumer_lag, 12),
        (
            "App ERROR lines per minute",
            "timeseries",
            scope.error_logs_per_minute(),
            "none",
            thresholds.error_logs_per_minute,
            12,
        ),
        (
            "CPU (% of one core, 1-minute mean)",
            "stat",
            scope.container_cpu_percent(60),
            "percent",
            thresholds.cpu_percent,
            8,
        ),
        ("Memory (% of limit)", "stat", scope.container_memory_percent(60), "percent", thresholds.memory_percent, 8),
        (
            "Disk of the Docker volumes (% used)",
            "gauge",
            scope.disk_used_percent(60),
            "percent",
            thresholds.disk_percent,
            8,
        ),
        (
            "Hours since the last successful backup",
            "stat",
            scope.backup_age_hours(2 * settings.backup.max_age_hours * HOUR),
            "h",
            Tiers(warning=settings.backup.max_age_hours - 1, critical=settings.backup.max_age_hours),
            12,
        ),
        (
            "Last backup run failed (1 = failed)",
            "stat",
            scope.backup_last_failed(settings.backup.max_age_hours * HOUR),
            "none",
            None,
            12,
        ),
    ]
    seed = settings.staging_seed
    if seed is not None and seed.source_stack is not None:
        # Where the stack runs on prod's masked data: how old it is (the staging-data-stale alert).
        rows.append(
            (
                f"Days since {seed.source_stack} made the data this stack runs on",
                "stat",
                scope.staging_data_age_days(3 * SEED_AGE_INTERVAL_SECONDS),
                "none",
                Tiers(warning=STAGING_DATA_MAX_AGE_DAYS - 3, critical=STAGING_DATA_MAX_AGE_DAYS),
                12,
            )
        )
    panels: list[dict[str, Any]] = []
    x = y = 0
    for panel_id, (title, kind, query, unit, tiers, width) in enumerate(rows, start=1):
        if x + width > WIDTH:
            x, y = 0, y + 6
        panels.append(
            {
                "id": panel_id,
                "type": kind,
                "title": title,
                "gridPos": {"x": x, "y": y, "w": width, "h": 6},
                "datasource": {"type": query.datasource, "uid": DATASOURCE_UIDS[query.datasource]},
                "targets": [_target(query)],
                "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(tiers)}, "overrides": []},
                "options": {},
            }
        )
        x += width
    return {
        "uid": f"{settings.environment}-platform",
        "title": f"audit-x {settings.environment}: platform",
        "tags": ["audit-x", settings.environment],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def dashboard_json(settings: Settings) -> str:
    return json.dumps(dashboard(settings), indent=2, sort_keys=False) + "\n"
