"""Grafana alerting, rendered from the settings: rules, contact points and the notification policy.

Every rule is warning or critical, reads one signal (components/observability/signals.py), has a summary and a
runbook link into docs/runbooks.md, and says what no data means: where the series must always
exist (the collector's), no data alerts, because a silent collector must not look healthy; where
absence is the healthy state (no error lines, no consumer group yet, no failed backup), no data
is OK and another rule covers the silence.

Routing: `severity=critical` to PagerDuty and Slack, `severity=warning` to Slack and e-mail. A
channel is there only when configured; critical alerts fall back to e-mail when neither PagerDuty
nor Slack is configured, so a critical alert is never dropped. Secrets (the Slack webhook, the
PagerDuty key) are `$__file{path}` references Grafana reads from its secret files when it
provisions, never values, and never environment variables.

Each rule also states the delays between a failure and its notification (`stages`), from which
`python -m ops.ttd STACK` computes the worst-case time to detect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from components.lib.containers import SECRETS_DIR
from components.observability.signals import INFLUXDB, LOKI, Query, Scope
from components.settings import AlertingSettings, Settings, Tiers
from runner.metrics import ARCHIVING_INTERVAL_SECONDS, SEED_AGE_INTERVAL_SECONDS
from runner.pitr import ARCHIVE_PUSH_TIMEOUT_SECONDS
from runner.staging_seed import LOAD_KIND, PRODUCE_KIND

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
FOLDER = "audit-x"
EXPRESSION_DATASOURCE = "__expr__"
# Datasource uids of components/observability/grafana.py, by the language the query speaks.
DATASOURCE_UIDS = {INFLUXDB: "audit-x-influxdb", LOKI: "audit-x-loki"}
# Environment variables Grafana expands in the contact points (set on its container when configured).
# The secret files Grafana's container gets, and the contact points reference (`$__file{...}`).
SLACK_FILE = f"{SECRETS_DIR}/slack-webhook-url"
PAGERDUTY_FILE = f"{SECRETS_DIR}/pagerduty-routing-key"

# Docker reports unhealthy after `retries` failed checks, each started `interval` after the
# previous one ended and taking up to `timeout`: retries x (interval + timeout) at worst. The
# slowest long-running container's is the backup runner's, 3 x (20 s + 10 s); a test holds every
# check the program declares to this budget.
UNHEALTHY_AFTER_SECONDS = 90
# Redpanda refreshes consumer lag no faster than `health_monitor_max_metadata_age` (10 s).
REDPANDA_LAG_REFRESH_FLOOR_SECONDS = 10
# Staging's seed runs (made in prod, loaded in staging): weekly; two weeks old is stale.
SEED_KINDS = (PRODUCE_KIND, LOAD_KIND)
STAGING_DATA_MAX_AGE_DAYS = 14
# Alloy's loki.write batches lines for up to `batch_wait` (1 s by default) before pushing.
ALLOY_BATCH_WAIT_SECONDS = 1


@dataclass(frozen=True)
class Stage:
    """One delay between a failure and its notification, as `ops.ttd` lists it."""

    name: str
    seconds: int


# Grafana refuses a uid longer than 40 characters, and restart-loops on a provisioned one.
GRAFANA_UID_MAX = 40


def grafana_uid(*parts: str) -> str:
    """A readable uid (`prod-backup-stale-critical`) where it fits in 40 characters; otherwise the
    environment followed by a digest of the rest, still unique and stable for any environment name."""
    readable = "-".join(parts)
    if len(readable) <= GRAFANA_UID_MAX:
        return readable
    head, rest = parts[0], "-".join(parts[1:])
    digest = hashlib.sha256(rest.encode()).hexdigest()
    return f"{head}-{digest[: GRAFANA_UID_MAX - len(head) - 1]}"


@dataclass(frozen=True)
class AlertRule:
    key: str  # the runbook's section, shared by both tiers of a rule
    title: str
    summary: str
    severity: Severity
    query: Query
    threshold: float
    reducer: Literal["last", "max"]
    no_data: Literal["Alerting", "OK"]
    # Delays before the data the rule reads can show the failure (collection, flush, window).
    stages: tuple[Stage, ...]
    comparison: Literal["gt", "lt"] = "gt"

    def uid(self, environment: str) -> str:
        return grafana_uid(environment, self.key, self.severity)

    def pending_seconds(self, alerting: AlertingSettings) -> int:
        if self.severity == "critical":
            return alerting.critical_pending_seconds
        return alerting.warning_pending_seconds

    def detection_stages(self, alerting: AlertingSettings) -> tuple[Stage, ...]:
        """Every delay, worst case, from the failure to the first notification."""
        return (
            *self.stages,
            Stage("evaluation interval", alerting.evaluation_interval_seconds),
            Stage("pending period", self.pending_seconds(alerting)),
            Stage("notification group wait", alerting.group_wait_seconds),
        )

    def time_to_detect(self, alerting: AlertingSettings) -> int:
        return sum(stage.seconds for stage in self.detection_stages(alerting))


def _tiered(tiers: Tiers, key: str, title: str, summary: str, **rule: Any) -> list[AlertRule]:
    """A warning and a critical rule reading the same signal, at the two thresholds of `tiers`."""
    return [
        AlertRule(
            key=key,
            title=f"{title} ({severity})",
            summary=summary,
            severity=severity,
            threshold=getattr(tiers, severity),
            **rule,
        )
        for severity in SEVERITIES
    ]


def alert_rules(settings: Settings) -> list[AlertRule]:
    """Every rule the environment's Grafana evaluates, derived from its settings alone."""
    monitoring, thresholds = settings.monitoring, settings.alerting.thresholds
    scope = Scope(settings.environment, settings.influxdb.bucket)
    collected = (
        Stage("collection interval", monitoring.collection_interval_seconds),
        Stage("flush interval", monitoring.flush_interval_seconds),
    )
    # A `last` query must reach back past at least one collection: three, to ride out one miss.
    recent = 3 * max(monitoring.collection_interval_seconds, monitoring.flush_interval_seconds)
    minute = 60
    quarter = 15 * 60
    backup_hours = settings.backup.max_age_hours
    archiving_limit = 3 * settings.pitr.archive_timeout_seconds
    # A weekly full and a daily differential, each with the same slack as the logical backups.
    slack_hours = backup_hours - 24
    pitr_limits = {"pitr-full": 7 * 24.0 + slack_hours, "pitr-diff": float(backup_hours)}
    lag_refresh = max(monitoring.collection_interval_seconds, REDPANDA_LAG_REFRESH_FLOOR_SECONDS)

    return [
        AlertRule(
            key="collector-silent",
            title="Metrics collector silent",
            summary="No container metrics reached InfluxDB: every collector-fed alert is blind.",
            severity="critical",
            query=scope.collector_heartbeat(recent),
            threshold=1,
            comparison="lt",
            reducer="last",
            no_data="Alerting",
            stages=(Stage("query window without data", recent),),
        ),
        AlertRule(
            key="container-not-running",
            title="Container not running",
            summary="A long-running container of this environment has stopped or is restarting.",
            severity="critical",
            query=scope.containers_not_running(recent),
            threshold=0,
            reducer="last",
            no_data="Alerting",
            stages=collected,
        ),
        AlertRule(
            key="container-unhealthy",
            title="Container health check failing",
            summary="Docker reports a container unhealthy: its own health check keeps failing.",
            severity="critical",
            query=scope.containers_unhealthy(recent),
            threshold=0,
            reducer="last",
            no_data="Alerting",
            stages=(Stage("Docker health check retries", UNHEALTHY_AFTER_SECONDS), *collected),
        ),
        *_tiered(
            thresholds.restarts,
            "container-restarts",
            "Container restarting",
            "A container restarted more often in 15 minutes than the threshold: a crash loop or OOM kills.",
            query=scope.container_restarts(quarter),
            reducer="last",
            no_data="Alerting",
            stages=collected,
        ),
        *_tiered(
            thresholds.cpu_percent,
            "container-cpu",
            "Container CPU high",
            "A container's mean CPU over a minute is above the threshold (percent of one core).",
            query=scope.container_cpu_percent(minute),
            reducer="last",
            no_data="Alerting",
            stages=(*collected, Stage("averaging window", minute)),
        ),
        *_tiered(
            thresholds.memory_percent,
            "container-memory",
            "Container memory near its limit",
            "A container uses more of its memory limit than the threshold; at 100% it is OOM-killed.",
            query=scope.container_memory_percent(recent),
            reducer="last",
            no_data="Alerting",
            stages=collected,
        ),
        *_tiered(
            thresholds.disk_percent,
            "disk-filling",
            "Docker volumes' disk filling up",
            "The filesystem holding the Docker volumes is fuller than the threshold.",
            query=scope.disk_used_percent(recent),
            reducer="last",
            no_data="Alerting",
            stages=collected,
        ),
        *_tiered(
            thresholds.probe_failure_percent,
            "web-probes-failing",
            "Web /health answering 5xx or not at all",
            "Percent of /health probes of a web slot over a minute that got a 5xx or no answer.",
            query=scope.probe_failure_percent(minute),
            reducer="last",
            no_data="Alerting",
            stages=(*collected, Stage("probe window", minute)),
        ),
        *_tiered(
            thresholds.error_logs_per_minute,
            "app-error-logs",
            "Application logging errors",
            "ERROR (or worse) lines per minute of an app role, from Loki, above the threshold.",
            query=scope.error_logs_per_minute(),
            reducer="last",
            # No error line in a minute gives no series: that is the healthy state. A silent
            # log pipeline shows as an unhealthy Loki or Alloy container instead.
            no_data="OK",
            stages=(Stage("Alloy batch wait", ALLOY_BATCH_WAIT_SECONDS), Stage("counting window", minute)),
        ),
        *_tiered(
            thresholds.consumer_lag,
            "consumer-lag",
            "Redpanda consumer group lagging",
            "A consumer group's largest partition lag is above the threshold: workers are falling behind.",
            query=scope.consumer_lag(recent),
            reducer="last",
            # Lag exists only for groups that have committed offsets; none is not a failure. A
            # dead broker or worker shows in the container rules.
            no_data="OK",
            stages=(Stage("Redpanda lag refresh", lag_refresh), *collected),
        ),
        AlertRule(
            key="pitr-archiving",
            title="WAL archiving stuck",
            summary=(
                "PostgreSQL's WAL is not reaching the PITR repository: archiving fails, or complete segments "
                f"have waited more than {archiving_limit} s (3 x pitr.archiveTimeoutSeconds). Point-in-time "
                "recovery loses what is not archived."
            ),
            severity="critical",
            query=scope.archiving_stuck(5 * ARCHIVING_INTERVAL_SECONDS, archiving_limit),
            threshold=0,
            reducer="last",
            # The runner writes the point every minute: none in five is the runner or the database
            # gone, and archiving unknown.
            no_data="Alerting",
            # A failed push shows in pg_stat_archiver once pgBackRest's archive-push gives up on it.
            stages=(
                Stage("archive-push timeout", ARCHIVE_PUSH_TIMEOUT_SECONDS),
                Stage("archiver poll", ARCHIVING_INTERVAL_SECONDS),
            ),
        ),
        AlertRule(
            key="pitr-backup-stale",
            title="pgBackRest backup older than its schedule allows",
            summary=(
                f"The last full pgBackRest backup is older than {pitr_limits['pitr-full']:g} h, or the last "
                f"differential older than {pitr_limits['pitr-diff']:g} h: a restore replays more WAL, and the "
                "window may not reach back as far as pitr.retentionDays."
            ),
            severity="warning",
            query=scope.pitr_backup_age_ratio(int(2 * pitr_limits["pitr-full"] * 3600), pitr_limits),
            threshold=1,
            reducer="last",
            # No success of either kind in twice the full's limit: as stale as it gets.
            no_data="Alerting",
            stages=(),
        ),
        AlertRule(
            key="backup-stale",
            title="Backup older than its maximum age",
            summary=f"The last successful backup of a kind is older than {backup_hours} h (backup.maxAgeHours).",
            severity="critical",
            query=scope.backup_age_hours(2 * backup_hours * 3600),
            threshold=backup_hours,
            reducer="last",
            # No success at all in twice the maximum age is as stale as it gets.
            no_data="Alerting",
            stages=(),
        ),
        AlertRule(
            key="backup-failed",
            title="Backup run failed",
            summary="The latest run of a backup kind (postgres, influxdb or the restore drill) failed.",
            severity="warning",
            query=scope.backup_last_failed(backup_hours * 3600, excluding=SEED_KINDS),
            threshold=0,
            reducer="last",
            # No run in the window is the backup-stale rule's to report.
            no_data="OK",
            stages=(),
        ),
        *staging_seed_rules(settings, scope),
    ]


def staging_seed_rules(settings: Settings, scope: Scope) -> list[AlertRule]:
    """Where a stack makes staging's seeds (prod) or loads them (staging): a failed run warns;
    where it loads them, data older than STAGING_DATA_MAX_AGE_DAYS warns too (docs/staging-data.md)."""
    seed = settings.staging_seed
    if seed is None:
        return []
    # Weekly runs: a failure stays the latest for a week, and is still reported within two.
    rules = [
        AlertRule(
            key="seed-failed",
            title="Staging seed run failed",
            summary=(
                "The latest run making staging's seed (prod) or loading it (staging) failed: staging's data "
                "gets older until the next one succeeds. The run's log says why (docs/staging-data.md)."
            ),
            severity="warning",
            query=scope.backup_last_failed(2 * STAGING_DATA_MAX_AGE_DAYS * 86400, kinds=SEED_KINDS),
            threshold=0,
            reducer="last",
            no_data="OK",
            stages=(),
        )
    ]
    if seed.source_stack is not None:
        window = 3 * SEED_AGE_INTERVAL_SECONDS
        rules.append(
            AlertRule(
                key="staging-data-stale",
                title="Staging's data older than two weeks",
                summary=(
                    f"The seed staging runs on was made more than {STAGING_DATA_MAX_AGE_DAYS} days ago in "
                    f"{seed.source_stack}, or none was ever loaded: migrations and load tests no longer meet "
                    "prod's data. Load the newest (docs/staging-data.md)."
                ),
                severity="warning",
                query=scope.staging_data_age_days(window),
                threshold=STAGING_DATA_MAX_AGE_DAYS,
                reducer="last",
                # The runner reports every SEED_AGE_INTERVAL_SECONDS: none in three is not knowing
                # what staging runs on (or no seed source exported yet).
                no_data="Alerting",
                stages=(Stage("seed age report", SEED_AGE_INTERVAL_SECONDS),),
            )
        )
    return rules


def _rule_document(rule: AlertRule, settings: Settings) -> dict[str, Any]:
    query = rule.query
    if query.datasource == LOKI:
        model: dict[str, Any] = {"refId": "A", "expr": query.text, "queryType": "instant"}
    else:
        model = {"refId": "A", "query": query.text}
    alerting = settings.alerting
    return {
        "uid": rule.uid(settings.environment),
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": query.window_seconds, "to": 0},
                "datasourceUid": DATASOURCE_UIDS[query.datasource],
                "model": model,
            },
            {
                "refId": "B",
                "datasourceUid": EXPRESSION_DATASOURCE,
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": rule.reducer},
            },
            {
                "refId": "C",
                "datasourceUid": EXPRESSION_DATASOURCE,
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": rule.comparison, "params": [rule.threshold]}}],
                },
            },
        ],
        "noDataState": rule.no_data,
        # A query that errors (InfluxDB down, a bad query) is itself an alert, not silence.
        "execErrState": "Alerting",
        "for": f"{rule.pending_seconds(alerting)}s",
        "annotations": {
            "summary": rule.summary,
            "runbook_url": f"{alerting.runbook_base_url}#{rule.key}",
        },
        "labels": {"severity": rule.severity, "environment": settings.environment},
        "isPaused": False,
    }


def file_reference(path: str) -> str:
    """Grafana's provisioning reads a value from a file where it finds `$__file{path}`."""
    return f"$__file{{{path}}}"


def pages_someone(settings: Settings) -> bool:
    """Whether critical alerts reach a pager (PagerDuty), not only chat or e-mail."""
    return settings.provided_secrets.pagerduty_routing_key is not None


def contact_points(settings: Settings) -> dict[Severity, list[dict[str, Any]]]:
    """The integrations each severity notifies, only those configured."""
    secrets, alerting = settings.provided_secrets, settings.alerting
    slack = {"type": "slack", "settings": {"url": file_reference(SLACK_FILE)}} if secrets.slack_webhook_url else None
    pagerduty = (
        {"type": "pagerduty", "settings": {"integrationKey": file_reference(PAGERDUTY_FILE), "severity": "critical"}}
        if secrets.pagerduty_routing_key
        else None
    )
    email = (
        {"type": "email", "settings": {"addresses": ";".join(alerting.email_to), "singleEmail": True}}
        if alerting.email_to
        else None
    )
    critical = [r for r in (pagerduty, slack) if r] or [r for r in (email,) if r]
    warning = [r for r in (slack, email) if r]
    return {"critical": critical, "warning": warning}


def receiver_name(environment: str, severity: Severity) -> str:
    return f"{environment}-{severity}"


def alerting_file(settings: Settings) -> str:
    """Grafana's alerting provisioning (apiVersion 1): rule groups, contact points, policy tree."""
    env, alerting = settings.environment, settings.alerting
    rules = alert_rules(settings)
    points = contact_points(settings)
    document = {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": f"{env}-{severity}",
                "folder": FOLDER,
                "interval": f"{alerting.evaluation_interval_seconds}s",
                "rules": [_rule_document(rule, settings) for rule in rules if rule.severity == severity],
            }
            for severity in SEVERITIES
        ],
        "contactPoints": [
            {
                "orgId": 1,
                "name": receiver_name(env, severity),
                "receivers": [
                    {"uid": grafana_uid(env, severity, receiver["type"]), **receiver, "disableResolveMessage": False}
                    for receiver in points[severity]
                ],
            }
            for severity in SEVERITIES
        ],
        "policies": [
            {
                "orgId": 1,
                "receiver": receiver_name(env, "warning"),
                "group_by": ["grafana_folder", "alertname"],
                "group_wait": f"{alerting.group_wait_seconds}s",
                "group_interval": f"{alerting.group_interval_seconds}s",
                "repeat_interval": f"{alerting.repeat_interval_hours}h",
                "routes": [
                    {
                        "receiver": receiver_name(env, "critical"),
                        "object_matchers": [["severity", "=", "critical"]],
                        # Each critical instance is its own group: a second failure is not held
                        # back by group_interval behind a first one.
                        "group_by": ["..."],
                        "group_wait": f"{alerting.group_wait_seconds}s",
                    },
                    {
                        "receiver": receiver_name(env, "warning"),
                        "object_matchers": [["severity", "=", "warning"]],
                    },
                ],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False, width=1000)
