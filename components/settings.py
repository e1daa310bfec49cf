"""The one typed view of a stack's config.

Every value the program uses is read here, once, and validated before any resource is
declared. Staging and prod differ only in what their `Pulumi.<stack>.yaml` sets: nothing in
the program looks at the stack's name.

`load_settings(raw, secret_keys)` takes config the way Pulumi hands it to a program (a flat
map of `namespace:key` to string, structured values as JSON) so it can be called from the
program, from the offline plan and from tests alike. Every problem is collected and reported
in one `ConfigError` that names the key, the value given and what was expected; values of
secret keys are never echoed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from backup.config import ConfigError as RunnerConfigError
from backup.config import Schedule
from backup.storage import PART_BUFFERS

PROJECT = "audit-x"
NAMESPACE = f"{PROJECT}:"
AWS_REGION_KEY = "aws:region"

# The generated secrets (components/platform/secrets.py generates them, under these names).
GENERATED_SECRET_NAMES = (
    "postgres-password",
    "redis-password",
    "influxdb-admin-password",
    "influxdb-operator-token",
    "grafana-admin-password",
    "secret-key-base",
)
# Those the program can rotate so that the new value takes effect where it is used. InfluxDB
# applies its user's password and operator token only at setup: a new value would lock every
# consumer out (docs/secret-rotation.md says how to rotate them by hand).
NOT_ROTATABLE = {
    "influxdb-admin-password": "InfluxDB sets it only at first setup",
    "influxdb-operator-token": "InfluxDB sets it only at first setup",
}
ROTATABLE_SECRETS = tuple(name for name in GENERATED_SECRET_NAMES if name not in NOT_ROTATABLE)

# Provided secrets: set by operators with `pulumi config set --secret KEY VALUE`, all optional.
PROVIDED_SECRET_KEYS = ("sentryDsn", "slackWebhookUrl", "pagerdutyRoutingKey", "smtpPassword")

# An image reference pinned to a version tag or a digest. `latest` (explicit or implied by a
# missing tag) is refused: a pull must always mean the same bits.
_IMAGE_TAG = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/:-]*[a-z0-9]):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[0-9a-f]{64}$")


class ConfigError(pulumi.RunError):
    """Invalid stack config. A RunError, so Pulumi prints the message without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(
            f"Invalid stack config ({count}); nothing was declared:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def validate_image(value: str) -> str:
    if _IMAGE_DIGEST.match(value):
        return value
    match = _IMAGE_TAG.match(value)
    if not match:
        raise ValueError("expected an image pinned to a tag or digest, such as 'postgres:17.6-bookworm'")
    if match.group("tag") == "latest":
        raise ValueError("expected a pinned version tag or digest, not 'latest'")
    return value


PinnedImage = Annotated[str, Field(description="image pinned to a tag or digest")]
DnsName = Annotated[
    str,
    StringConstraints(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"),
]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,23}$")]


class ConfigModel(BaseModel):
    """Stack config: camelCase keys, unknown keys refused, instances immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class ImageField(ConfigModel):
    image: PinnedImage

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return validate_image(value)


class LogRotationSettings(ConfigModel):
    """json-file log rotation applied to every container."""

    max_size_mb: int = Field(default=20, ge=1, le=1024)
    max_files: int = Field(default=5, ge=1, le=50)


class PostgresSettings(ImageField):
    image: PinnedImage = "postgres:17.6-bookworm"
    user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "audit_x"
    memory_limit_mb: int = Field(ge=256, le=262144)
    shared_buffers_mb: int = Field(ge=16, le=131072)
    effective_cache_size_mb: int = Field(ge=16, le=262144)
    work_mem_mb: int = Field(default=8, ge=1, le=4096)
    maintenance_work_mem_mb: int = Field(default=64, ge=16, le=16384)
    max_connections: int = Field(default=100, ge=10, le=5000)

    @model_validator(mode="after")
    def _fits_in_memory_limit(self) -> PostgresSettings:
        # shared_buffers is allocated up front; past ~40% of the container's memory the kernel's
        # page cache starves and the OOM killer takes the database under load.
        if self.shared_buffers_mb * 10 > self.memory_limit_mb * 4:
            raise ValueError(
                f"sharedBuffersMb ({self.shared_buffers_mb}) must be at most 40% of "
                f"memoryLimitMb ({self.memory_limit_mb})"
            )
        return self


class RedisSettings(ImageField):
    image: PinnedImage = "redis:7.4.5-bookworm"
    memory_limit_mb: int = Field(ge=64, le=65536)
    max_memory_mb: int = Field(ge=32, le=65536)

    @model_validator(mode="after")
    def _headroom_for_fork(self) -> RedisSettings:
        # AOF rewrites fork the process: keep a quarter of the limit free for copy-on-write.
        if self.max_memory_mb * 4 > self.memory_limit_mb * 3:
            raise ValueError(
                f"maxMemoryMb ({self.max_memory_mb}) must be at most 75% of memoryLimitMb ({self.memory_limit_mb})"
            )
        return self


class RedpandaSettings(ImageField):
    image: PinnedImage = "docker.redpanda.com/redpandadata/redpanda:v25.1.9"
    cores: int = Field(ge=1, le=64)
    memory_mb: int = Field(ge=512, le=262144)
    memory_limit_mb: int = Field(ge=768, le=262144)

    @model_validator(mode="after")
    def _headroom_for_seastar(self) -> RedpandaSettings:
        # --memory is what Seastar allocates; the process needs more than that on top.
        if self.memory_mb + 256 > self.memory_limit_mb:
            raise ValueError(
                f"memoryLimitMb ({self.memory_limit_mb}) must exceed memoryMb ({self.memory_mb}) by at least 256"
            )
        return self


class InfluxDbSettings(ImageField):
    image: PinnedImage = "influxdb:2.7.11-alpine"
    org: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = "audit-x"
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = "metrics"
    retention_days: int = Field(ge=1, le=3650)
    memory_limit_mb: int = Field(ge=256, le=65536)

    @field_validator("image")
    @classmethod
    def _influxdb_2(cls, value: str) -> str:
        # The setup-on-first-start env (DOCKER_INFLUXDB_INIT_*) and the token model are 2.x's.
        tag = value.split("@", maxsplit=1)[0].rsplit(":", 1)[-1]
        if not tag.startswith("2."):
            raise ValueError("expected an InfluxDB 2.x image, such as 'influxdb:2.7.11-alpine'")
        return value


class GrafanaSettings(ImageField):
    image: PinnedImage = "grafana/grafana:11.6.0"
    admin_user: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "admin"
    memory_limit_mb: int = Field(default=512, ge=128, le=16384)


class LogsSettings(ConfigModel):
    """Centralised logs: Loki (single binary, filesystem storage) fed by Grafana Alloy."""

    loki_image: PinnedImage = "grafana/loki:3.4.2"
    alloy_image: PinnedImage = "grafana/alloy:v1.7.5"
    retention_days: int = Field(ge=1, le=3650)
    loki_memory_limit_mb: int = Field(default=512, ge=128, le=65536)
    alloy_memory_limit_mb: int = Field(default=256, ge=64, le=16384)

    @field_validator("loki_image", "alloy_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return validate_image(value)


class MonitoringSettings(ConfigModel):
    """The metrics collector (Telegraf) and how often it collects and writes."""

    collector_image: PinnedImage = "telegraf:1.36.3-alpine"
    # Telegraf runs as its own user; reading the (read-only) Docker socket needs the host's
    # `docker` group, whose id differs from host to host: `getent group docker`.
    docker_group_id: int = Field(ge=1, le=65535)
    collector_memory_limit_mb: int = Field(default=192, ge=64, le=4096)
    collection_interval_seconds: int = Field(default=10, ge=5, le=60)
    flush_interval_seconds: int = Field(default=10, ge=1, le=60)
    probe_timeout_seconds: int = Field(default=5, ge=1, le=30)

    @field_validator("collector_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return validate_image(value)

    @model_validator(mode="after")
    def _probe_fits_in_interval(self) -> MonitoringSettings:
        if self.probe_timeout_seconds >= self.collection_interval_seconds:
            raise ValueError(
                f"probeTimeoutSeconds ({self.probe_timeout_seconds}) must be shorter than "
                f"collectionIntervalSeconds ({self.collection_interval_seconds})"
            )
        return self


class Tiers(ConfigModel):
    """An alert's two thresholds: above `warning` it warns, above `critical` it pages."""

    warning: float = Field(ge=0)
    critical: float = Field(gt=0)

    @model_validator(mode="after")
    def _critical_above_warning(self) -> Tiers:
        if self.critical <= self.warning:
            raise ValueError(f"critical ({self.critical:g}) must be above warning ({self.warning:g})")
        return self


class AlertThresholds(ConfigModel):
    consumer_lag: Tiers = Tiers(warning=1000, critical=10000)
    probe_failure_percent: Tiers = Tiers(warning=1, critical=5)
    error_logs_per_minute: Tiers = Tiers(warning=5, critical=30)
    cpu_percent: Tiers = Tiers(warning=80, critical=95)
    memory_percent: Tiers = Tiers(warning=85, critical=95)
    disk_percent: Tiers = Tiers(warning=80, critical=90)
    restarts: Tiers = Tiers(warning=0, critical=2)


EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s;,]+@[^@\s;,]+\.[a-z]{2,}$")]


class SmtpSettings(ConfigModel):
    host: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+:\d{2,5}$")]
    user: Annotated[str, StringConstraints(min_length=1)] | None = None
    from_address: EmailAddress


class AlertingSettings(ConfigModel):
    """Grafana alerting: how fast rules evaluate and notify, thresholds, and the e-mail channel."""

    evaluation_interval_seconds: int = Field(default=30, ge=10, le=600)
    critical_pending_seconds: int = Field(default=60, ge=0, le=3600)
    warning_pending_seconds: int = Field(default=300, ge=0, le=86400)
    group_wait_seconds: int = Field(default=30, ge=0, le=600)
    group_interval_seconds: int = Field(default=300, ge=10, le=86400)
    repeat_interval_hours: int = Field(default=4, ge=1, le=168)
    runbook_base_url: Annotated[str, StringConstraints(pattern=r"^https://\S+$")] = (
        "https://github.com/audit-x/audit-x-infra/blob/main/docs/runbooks.md"
    )
    email_to: list[EmailAddress] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    thresholds: AlertThresholds = AlertThresholds()

    @field_validator("evaluation_interval_seconds")
    @classmethod
    def _multiple_of_scheduler_tick(cls, value: int) -> int:
        # Grafana's rule scheduler ticks every 10 s; a group interval must be a multiple of it.
        if value % 10:
            raise ValueError("expected a multiple of 10 (Grafana evaluates rules on a 10 s tick)")
        return value

    @model_validator(mode="after")
    def _email_needs_smtp(self) -> AlertingSettings:
        if self.email_to and self.smtp is None:
            raise ValueError("emailTo is set but smtp is not: expected smtp {host, fromAddress[, user]}")
        return self


class WebSettings(ConfigModel):
    replicas: int = Field(ge=1, le=20)
    port: int = Field(default=3000, ge=1024, le=65535)
    memory_limit_mb: int = Field(ge=256, le=65536)
    health_timeout_seconds: int = Field(
        default=120, ge=10, le=900, description="how long a new web container may take to become healthy"
    )
    drain_seconds: int = Field(default=30, ge=5, le=600, description="time an old container gets to finish requests")


class EdgeSettings(ImageField):
    """The edge proxy: TLS, rate limits and health-aware routing in front of the web role."""

    image: PinnedImage = "traefik:v3.3.4"
    acme_email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")]
    rate_limit_average: int = Field(default=50, ge=1, le=100000, description="requests per second per client IP")
    rate_limit_burst: int = Field(default=100, ge=1, le=100000)
    memory_limit_mb: int = Field(default=256, ge=64, le=8192)

    @model_validator(mode="after")
    def _burst_covers_average(self) -> EdgeSettings:
        if self.rate_limit_burst < self.rate_limit_average:
            raise ValueError(
                f"rateLimitBurst ({self.rate_limit_burst}) must be at least "
                f"rateLimitAverage ({self.rate_limit_average})"
            )
        return self


class WorkerSettings(ConfigModel):
    name: RoleName
    command: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    replicas: int = Field(ge=0, le=20)
    memory_limit_mb: int = Field(ge=128, le=65536)
    health_command: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        default=None, description="shell probe; by default the worker's heartbeat file must be under a minute old"
    )


class AppSettings(ImageField):
    image: PinnedImage
    rails_env: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] = "production"
    rails_max_threads: int = Field(default=5, ge=1, le=64)
    web: WebSettings
    workers: list[WorkerSettings] = Field(min_length=1)
    migration_memory_limit_mb: int = Field(default=512, ge=128, le=65536)

    @field_validator("workers")
    @classmethod
    def _unique_worker_names(cls, workers: list[WorkerSettings]) -> list[WorkerSettings]:
        names = [w.name for w in workers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"expected unique worker names, got {', '.join(duplicates)} more than once")
        if "web" in names or "migrate" in names:
            raise ValueError("worker names 'web' and 'migrate' are reserved for the web role and the migration job")
        return workers


# The backup runner's memory besides its part buffers: Python, boto3 and psycopg, with a margin
# (tools/bench_backup.py measured a peak RSS of about 110 MB with three 8 MiB parts).
RUNNER_BASE_MEMORY_MB = 128


class BackupSettings(ConfigModel):
    bucket_name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    daily_copies: int = Field(default=7, ge=1, le=366)
    weekly_copies: int = Field(default=4, ge=1, le=520)
    monthly_copies: int = Field(default=12, ge=1, le=1200)
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)
    abort_incomplete_upload_days: int = Field(default=1, ge=1, le=30)
    postgres_schedule: str = "02:00"
    influxdb_schedule: str = "02:30"
    verify_schedule: str = "sun 04:00"
    # A daily backup is up to 24 h old just before the next one: less than 25 would always alarm.
    max_age_hours: int = Field(default=26, ge=25, le=24 * 45)
    before_migrations: bool = False
    part_size_mb: int = Field(default=8, ge=5, le=512)
    memory_limit_mb: int = Field(default=384, ge=256, le=16384)
    startup_timeout_seconds: int = Field(default=1800, ge=60, le=6 * 3600)

    @model_validator(mode="after")
    def _part_buffers_fit_in_memory_limit(self) -> BackupSettings:
        # Past the limit the runner is OOM-killed mid-dump, every night.
        needed = PART_BUFFERS * self.part_size_mb + RUNNER_BASE_MEMORY_MB
        if needed > self.memory_limit_mb:
            raise ValueError(
                f"memoryLimitMb ({self.memory_limit_mb}) must hold {PART_BUFFERS} parts of partSizeMb "
                f"({self.part_size_mb}) plus {RUNNER_BASE_MEMORY_MB} MB for the runner itself: at least {needed}"
            )
        return self

    @field_validator("postgres_schedule", "influxdb_schedule", "verify_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        # The runner parses these; the same parser checks them here, before anything deploys.
        try:
            Schedule.parse("schedule", value)
        except RunnerConfigError:
            raise ValueError("expected HH:MM (UTC) or a day and HH:MM, such as '02:00' or 'sun 04:00'") from None
        return value


class ProvidedSecrets(ConfigModel):
    """Secrets operators provide with `pulumi config set --secret`; each may be absent."""

    sentry_dsn: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    smtp_password: SecretStr | None = None

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(r"^https://[^@\s]+@[^/\s]+/\d+$", value.get_secret_value()):
            raise ValueError("expected a Sentry DSN such as https://<key>@<host>/<project-id>")
        return value

    @field_validator("slack_webhook_url")
    @classmethod
    def _slack_webhook(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("https://hooks.slack.com/"):
            raise ValueError("expected a Slack incoming-webhook URL starting with https://hooks.slack.com/")
        return value

    @field_validator("pagerduty_routing_key")
    @classmethod
    def _pagerduty_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]{32}", value.get_secret_value()):
            raise ValueError("expected a 32-character PagerDuty Events API v2 routing key")
        return value

    def present(self) -> dict[str, SecretStr]:
        """The provided secrets that are set, by their kebab-case secret name."""
        values = {
            "sentry-dsn": self.sentry_dsn,
            "slack-webhook-url": self.slack_webhook_url,
            "pagerduty-routing-key": self.pagerduty_routing_key,
            "smtp-password": self.smtp_password,
        }
        return {name: value for name, value in values.items() if value is not None}


class Settings(ConfigModel):
    environment: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]
    aws_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = Field(alias=AWS_REGION_KEY)
    docker_host: Annotated[str, StringConstraints(pattern=r"^(ssh|tcp|unix)://\S+$")]
    domain: DnsName
    protect_stateful_resources: bool
    secret_recovery_window_days: int = Field(default=30)
    kms_deletion_window_days: int = Field(default=30, ge=7, le=30)
    log_rotation: LogRotationSettings = LogRotationSettings()
    postgres: PostgresSettings
    redis: RedisSettings
    redpanda: RedpandaSettings
    influxdb: InfluxDbSettings
    grafana: GrafanaSettings = GrafanaSettings()
    logs: LogsSettings
    monitoring: MonitoringSettings
    alerting: AlertingSettings = AlertingSettings()
    edge: EdgeSettings
    app: AppSettings
    backup: BackupSettings
    provided_secrets: ProvidedSecrets = ProvidedSecrets()
    # Generated secret name -> a rotation marker (a date, say). Changing a marker generates a new
    # value for that secret on the next `pulumi up` (docs/secret-rotation.md).
    rotation: dict[str, Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=dict)

    @field_validator("rotation")
    @classmethod
    def _rotatable(cls, value: dict[str, str]) -> dict[str, str]:
        refused = [f"{name} ({NOT_ROTATABLE[name]})" for name in sorted(value) if name in NOT_ROTATABLE]
        unknown = sorted(set(value) - set(ROTATABLE_SECRETS) - set(NOT_ROTATABLE))
        if refused or unknown:
            raise ValueError(
                f"cannot rotate {', '.join(refused + unknown)}: expected names among {', '.join(ROTATABLE_SECRETS)}"
            )
        return value

    @field_validator("secret_recovery_window_days")
    @classmethod
    def _recovery_window(cls, value: int) -> int:
        # Secrets Manager accepts 0 (delete at once) or 7 to 30 days.
        if value != 0 and not 7 <= value <= 30:
            raise ValueError("expected 0 (delete at once) or 7 to 30 days")
        return value

    @property
    def database_name(self) -> str:
        return f"audit_x_{self.environment}"


# --- loading -----------------------------------------------------------------------------------

_FIELD_BY_KEY = {
    (field.alias or name): name for name, field in Settings.model_fields.items() if name != "provided_secrets"
}


def _config_key(loc: tuple[int | str, ...]) -> str:
    """`('postgres', 'memoryLimitMb')` -> `audit-x:postgres.memoryLimitMb`."""
    if not loc:
        return f"{NAMESPACE}*"
    head, *rest = [str(part) for part in loc]
    if head == "providedSecrets" and rest:
        head, rest = rest[0], rest[1:]
    key = head if ":" in head else f"{NAMESPACE}{head}"
    return ".".join([key, *rest])


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_value(raw: Any) -> Any:
    """Pulumi passes structured config as JSON text; scalars stay strings (pydantic coerces)."""
    if isinstance(raw, str) and raw[:1] in "{[":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load_settings(raw: Mapping[str, Any], secret_keys: set[str] | frozenset[str] = frozenset()) -> Settings:
    """Validate a stack's config and return its settings, or raise one ConfigError listing every problem."""
    problems: list[str] = []
    data: dict[str, Any] = {}
    provided: dict[str, Any] = {}
    for full_key, raw_value in raw.items():
        if full_key == AWS_REGION_KEY:
            data[AWS_REGION_KEY] = raw_value
            continue
        if not full_key.startswith(NAMESPACE):
            continue  # other providers' config (docker:*, pulumi:*) is theirs to check
        key = full_key[len(NAMESPACE) :]
        if key in PROVIDED_SECRET_KEYS:
            if full_key not in secret_keys:
                problems.append(
                    f"{full_key} is stored in plain text: expected a secret, set it with "
                    f"`pulumi config set --secret {key} ...`"
                )
                continue
            provided[key] = raw_value
        elif key in _FIELD_BY_KEY:
            data[key] = _parse_value(raw_value)
        else:
            known = ", ".join(sorted(k for k in _FIELD_BY_KEY if ":" not in k) + list(PROVIDED_SECRET_KEYS))
            problems.append(f"{full_key}: unknown key; expected one of {known}")
    data["providedSecrets"] = provided

    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        for item in error.errors(include_url=False):
            key = _config_key(item["loc"])
            secret = any(key == f"{NAMESPACE}{k}" for k in PROVIDED_SECRET_KEYS)
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "missing":
                problems.append(f"{key}: missing; this key is required")
            else:
                shown = "[secret]" if secret else _describe(item["input"])
                problems.append(f"{key} = {shown}: {message}")
        raise ConfigError(problems) from None
    problems += _alert_channel_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _alert_channel_problems(settings: Settings) -> list[str]:
    """Alerts nobody receives are worse than none: they look like coverage. Warnings go to Slack
    and e-mail (never to PagerDuty: a warning must not page), so one of those two must be set."""
    if settings.alerting.email_to or settings.provided_secrets.slack_webhook_url:
        return []
    return [
        f"{NAMESPACE}alerting.emailTo = []: no channel for warnings; expected at least one address here, "
        "or slackWebhookUrl set with `pulumi config set --secret`"
    ]


def read_pulumi_config() -> tuple[dict[str, Any], set[str]]:
    """The current program's config, as the Pulumi engine handed it over, and its secret keys."""
    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = {key for key in raw if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret_keys
