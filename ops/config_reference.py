"""Print the config reference table of README.md from the settings models and the stack files.

    python -m ops.config_reference

Every key the settings accept, its type, its default, and the value each stack sets. A test
holds README.md to this output, so the table can never drift from the code.
"""

from __future__ import annotations

import json
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.settings import AWS_REGION_KEY, NAMESPACE, PROVIDED_SECRET_KEYS, Settings, Tiers, load_settings
from harness.mock_engine import load_stack_config, stack_names

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"

DESCRIPTIONS = {
    "aws:region": "AWS region of the environment's secrets, KMS key and bucket",
    "environment": "environment name: in every resource name, secret path and label",
    "dockerHost": "the Docker host this environment runs on (`ssh://user@host`)",
    "domain": "public DNS name of the app; Grafana is at `grafana.<domain>`",
    "protectStatefulResources": "protect and retain volumes, bucket, secrets and KMS key",
    "secretRecoveryWindowDays": "days a deleted secret stays recoverable (0 or 7 to 30)",
    "kmsDeletionWindowDays": "days before a deleted KMS key is gone (7 to 30)",
    "logRotation.maxSizeMb": "json-file log size before rotation, per container",
    "logRotation.maxFiles": "rotated log files kept per container",
    "deploy.rerunJobs": "a new marker runs every one-shot job again (after a failed job: docs/deploy.md)",
    "postgres.image": "PostgreSQL image, pinned",
    "postgres.user": "the bootstrap superuser, for the jobs alone; the app's roles are named after it",
    "postgres.memoryLimitMb": "container memory limit",
    "postgres.sharedBuffersMb": "`shared_buffers` (at most 40% of the limit)",
    "postgres.effectiveCacheSizeMb": "`effective_cache_size`",
    "postgres.workMemMb": "`work_mem`",
    "postgres.maintenanceWorkMemMb": "`maintenance_work_mem`",
    "postgres.maxConnections": "`max_connections`",
    "postgres.shmSizeMb": "`/dev/shm` of the server (Docker's default of 64 MB fails parallel queries)",
    "redis.image": "Redis image, pinned",
    "redis.memoryLimitMb": "container memory limit",
    "redis.maxMemoryMb": "`maxmemory` (at most 75% of the limit; policy `noeviction`)",
    "redpanda.image": "Redpanda image, pinned",
    "redpanda.cores": "Seastar cores (`--smp`)",
    "redpanda.memoryMb": "Seastar memory (`--memory`)",
    "redpanda.memoryLimitMb": "container memory limit (memoryMb + at least 256)",
    "influxdb.image": "InfluxDB 2.x image, pinned",
    "influxdb.org": "organisation created on first start",
    "influxdb.bucket": "bucket created on first start",
    "influxdb.retentionDays": "retention of that bucket",
    "influxdb.memoryLimitMb": "container memory limit",
    "grafana.image": "Grafana image, pinned",
    "grafana.adminUser": "Grafana admin login (password generated)",
    "grafana.memoryLimitMb": "container memory limit",
    "logs.lokiImage": "Loki 3 image, pinned",
    "logs.alloyImage": "Grafana Alloy image (the log shipper), pinned",
    "logs.retentionDays": "how long Loki keeps logs",
    "logs.lokiMemoryLimitMb": "Loki's memory limit",
    "logs.alloyMemoryLimitMb": "Alloy's memory limit",
    "monitoring.collectorImage": "Telegraf image (the metrics collector), pinned",
    "monitoring.dockerApiProxyImage": "the Docker API proxy: the only holder of the Docker socket, reads only; pinned",
    "monitoring.collectorMemoryLimitMb": "the collector's memory limit",
    "monitoring.collectionIntervalSeconds": "how often every input is collected (and Redpanda's lag refreshed)",
    "monitoring.flushIntervalSeconds": "how often the collector writes to InfluxDB",
    "monitoring.probeTimeoutSeconds": "timeout of each HTTP probe of the web role",
    "alerting.evaluationIntervalSeconds": "how often Grafana evaluates the rules (a multiple of 10)",
    "alerting.criticalPendingSeconds": "how long a critical condition must hold before it notifies",
    "alerting.warningPendingSeconds": "how long a warning condition must hold before it notifies",
    "alerting.groupWaitSeconds": "wait before the first notification of a new alert group",
    "alerting.groupIntervalSeconds": "wait before notifying new alerts of a warning group already notified",
    "alerting.repeatIntervalHours": "how often a still-firing alert is sent again",
    "alerting.runbookBaseUrl": "where docs/runbooks.md is published; each rule links to its section",
    "alerting.emailTo": "addresses warnings (and critical alerts, without PagerDuty or Slack) are e-mailed to",
    "alerting.smtp": "`{host: 'name:port', user?, fromAddress}`; required with emailTo; password: `smtpPassword`",
    "alerting.thresholds.consumerLag": "largest partition lag of a consumer group, messages",
    "alerting.thresholds.probeFailurePercent": "percent of a web slot's /health probes with a 5xx or no answer (1 min)",
    "alerting.thresholds.errorLogsPerMinute": "ERROR lines per minute of an app role (Loki)",
    "alerting.thresholds.cpuPercent": "mean CPU of a container over 1 min, percent of one core",
    "alerting.thresholds.memoryPercent": "memory of a container, percent of its limit",
    "alerting.thresholds.diskPercent": "use of the filesystem holding the Docker volumes",
    "alerting.thresholds.restarts": "restarts of a container in 15 min above which it alerts",
    "watcher.probeIntervalSeconds": "Route 53 probes the app and Grafana from outside every 10 or 30 s",
    "watcher.failureThreshold": "failed probes in a row before an endpoint is unhealthy",
    "watcher.probeRegions": "Route 53 regions that probe (at least 3)",
    "watcher.heartbeatIntervalSeconds": "how often the collector sends its heartbeat to CloudWatch",
    "watcher.heartbeatMissingPeriods": "one-minute periods without a heartbeat before the alarm",
    "watcher.emailTo": "addresses subscribed to the external watcher's topic",
    "edge.image": "Traefik image, pinned",
    "edge.acmeEmail": "Let's Encrypt account e-mail for the environment's certificates",
    "edge.rateLimitAverage": "requests per second allowed per client IP",
    "edge.rateLimitBurst": "requests a client IP may burst above the average",
    "edge.memoryLimitMb": "container memory limit",
    "app.image": "the audit_x image, pinned to a tag or digest",
    "app.entrypoint": "the image's own entrypoint, which the secrets launcher runs (`[]` for none)",
    "app.uid": "the user the app image runs as: the only reader of its secret files",
    "app.railsEnv": "`RAILS_ENV` of every role",
    "app.railsMaxThreads": "`RAILS_MAX_THREADS` of every role",
    "app.web.replicas": "web containers",
    "app.web.command": "the web role's command (the launcher runs it)",
    "app.web.port": "port the web role listens on",
    "app.web.memoryLimitMb": "memory limit per web container",
    "app.web.healthTimeoutSeconds": "how long `pulumi up` waits for a new web container to be healthy",
    "app.web.drainSeconds": "after SIGTERM, how long an old web container may finish its requests",
    "app.workers": "worker roles, each `{name, command, replicas, memoryLimitMb, healthCommand?}`",
    "app.migrationMemoryLimitMb": "memory limit of the migration job",
    "app.migrationTimeoutSeconds": "how long `bin/rails db:migrate` may run before the update fails",
    "app.canary": "a canary release in progress (`image`, `weight` 0-100, `replicas`); set by `python -m ops.canary`",
    "app.canaryPolicy.steps": "the canary's traffic steps, in %",
    "app.canaryPolicy.intervalSeconds": "how long each canary step is watched before it is judged",
    "app.canaryPolicy.minRequests": "canary requests a step needs before it is judged",
    "app.canaryPolicy.maxWaits": "extra intervals a step too quiet to judge may wait before the canary is aborted",
    "app.canaryPolicy.maxErrorRatio": "a canary 5xx ratio always allowed",
    "app.canaryPolicy.errorRatioFactor": "... or this many times the stable version's, whichever is higher",
    "app.canaryPolicy.latencyFactor": "the canary's p99 latency may be at most this many times the stable version's",
    "app.canaryPolicy.smokePaths": "paths the canary must answer 2xx through the edge (`X-Canary: 1`) before any user",
    "stagingSeed": "staging's data (docs/staging-data.md). Prod: `rules`, how each column is masked, and `keepDays`; "
    "staging: `sourceStack`, whose seeds it loads",
    "pitr.pgbackrestVersion": "pgBackRest's Debian package (PostgreSQL project's archive) in the database's image",
    "pitr.archiveTimeoutSeconds": "a WAL segment is archived at least this often: the most a lost host loses",
    "pitr.retentionDays": "days any moment can be restored to (pgBackRest's time-based retention)",
    "pitr.fullSchedule": "the weekly full pgBackRest backup, `day HH:MM` UTC",
    "pitr.diffSchedule": "the daily differential pgBackRest backup, `HH:MM` UTC",
    "pitr.drillSchedule": "the weekly PITR drill (restore, start, check, remove), `day HH:MM` UTC",
    "pitr.archiveQueueMaxMb": "WAL kept locally while S3 is unreachable, at most; past it pgBackRest drops it",
    "pitr.expectedDatabaseGb": "the database size the DR plan's RTO is computed for",
    "backup.bucketName": "S3 bucket for backups (globally unique)",
    "backup.dailyCopies": "daily backups kept (`daily/`)",
    "backup.weeklyCopies": "weekly backups kept (`weekly/`)",
    "backup.monthlyCopies": "monthly backups kept (`monthly/`)",
    "backup.noncurrentVersionDays": "days an overwritten, deleted or released version stays, after its lock",
    "backup.objectLockMode": "S3 Object Lock on every copy: COMPLIANCE (nobody can shorten it) or GOVERNANCE",
    "backup.abortIncompleteUploadDays": "days before an unfinished multipart upload is aborted",
    "backup.postgresSchedule": "daily PostgreSQL backup, `HH:MM` UTC",
    "backup.influxdbSchedule": "daily InfluxDB backup, `HH:MM` UTC",
    "backup.verifySchedule": "the restore drill, `day HH:MM` UTC",
    "backup.maxAgeHours": "the runner is unhealthy when a backup is older than this",
    "backup.beforeMigrations": "take a backup before every migration; the migration waits for it",
    "backup.partSizeMb": "multipart upload part size (the runner holds 3 parts in memory)",
    "backup.memoryLimitMb": "memory limit of the backup runner (at least 3 x partSizeMb + 128)",
    "backup.startupTimeoutSeconds": "how long a first start may take (it takes a backup when none is fresh)",
    "rotation": (
        "`{secret name: marker}`; a new marker rotates that generated secret; `postgres-password` "
        "takes a generation number (docs/secret-rotation.md)"
    ),
    "sentryDsn": "secret, optional: Sentry DSN; wires SENTRY_* into every role",
    "slackWebhookUrl": "secret, optional: Slack incoming webhook for alerts",
    "pagerdutyRoutingKey": "secret, optional: PagerDuty Events v2 routing key",
    "smtpPassword": "secret, optional: SMTP password for alert e-mail",
    "pagerdutyCloudwatchUrl": "secret, optional: PagerDuty's CloudWatch integration URL; the external watcher pages it",
}


# Leaf types by how the table names them.
_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    bool: "boolean",
    float: "number",
    SecretStr: "secret string",
    Tiers: "{warning, critical}",
}


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin is list:
        return "list"
    if origin is not None and get_args(annotation):  # Annotated[...]
        return _type_name(get_args(annotation)[0])
    if annotation not in _TYPE_NAMES and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", "?"))


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    rows: list[tuple[str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        if name == "provided_secrets":
            continue
        key = field.alias or name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not Tiers:
            rows += _rows(annotation, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", field))
    return rows


def _lookup(settings_json: dict[str, Any], key: str) -> Any:
    value: Any = settings_json
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _staging_seed_cell(value: dict[str, Any]) -> str | None:
    """stagingSeed: a whole schema's masking rules are counted, not printed."""
    if isinstance(value.get("rules"), dict):
        return f"rules for {len(value['rules'])} tables, seeds kept {value['keepDays']} d"
    if value.get("sourceStack"):
        return f"loads the seeds of `{value['sourceStack']}`"
    return None


def _cell(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return ""
    if isinstance(value, Tiers):
        value = value.model_dump(mode="json")
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, dict):
        return _staging_seed_cell(value) or f"`{json.dumps(value)}`"
    if isinstance(value, list):
        return f"{len(value)} roles" if value and isinstance(value[0], dict) else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def reference_table() -> str:
    stacks = sorted(stack_names(), key=lambda stack: (stack != "staging", stack))  # staging, then prod
    per_stack = {
        stack: load_settings(load_stack_config(stack)).model_dump(by_alias=True, mode="json") for stack in stacks
    }
    header = ["key", "type", "default", *stacks, "what it is"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, field in _rows(Settings, ""):
        full_key = key if key == AWS_REGION_KEY else f"{NAMESPACE}{key}"
        default = "required" if field.is_required() else _cell(field.get_default(call_default_factory=True))
        values = [_cell(_lookup(per_stack[stack], key)) for stack in stacks]
        lines.append(
            f"| `{full_key}` | {_type_name(field.annotation)} | {default} | "
            + " | ".join(values)
            + f" | {DESCRIPTIONS[key]} |"
        )
    for key in PROVIDED_SECRET_KEYS:
        lines.append(
            f"| `{NAMESPACE}{key}` | secret string | unset | "
            + " | ".join("" for _ in stacks)
            + f" | {DESCRIPTIONS[key]} |"
        )
    return "\n".join(lines)


def main() -> None:
    print(START)
    print(reference_table())
    print(END)


if __name__ == "__main__":
    main()
