"""The observability sections: Grafana, logs, the metrics collector and alerting."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from components.settings.types import ConfigModel, EmailAddress, Megabytes, NonEmptyText, PinnedImage, Seconds


class GrafanaSettings(ConfigModel):
    image: PinnedImage = "grafana/grafana:11.6.0"
    admin_user: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "admin"
    memory_limit_mb: Megabytes = Field(default=512, ge=128, le=16384)


class LogsSettings(ConfigModel):
    """Centralised logs: Loki (single binary, filesystem storage) fed by Grafana Alloy."""

    loki_image: PinnedImage = "grafana/loki:3.4.2"
    alloy_image: PinnedImage = "grafana/alloy:v1.7.5"
    retention_days: int = Field(ge=1, le=3650)
    loki_memory_limit_mb: Megabytes = Field(default=512, ge=128, le=65536)
    alloy_memory_limit_mb: Megabytes = Field(default=256, ge=64, le=16384)


class MonitoringSettings(ConfigModel):
    """The metrics collector (Telegraf) and how often it collects and writes."""

    collector_image: PinnedImage = "telegraf:1.36.3-alpine"
    # The only container that holds the Docker socket (components/platform/docker_api.py).
    docker_api_proxy_image: PinnedImage = "ghcr.io/tecnativa/docker-socket-proxy:v0.4.0"
    collector_memory_limit_mb: Megabytes = Field(default=192, ge=64, le=4096)
    collection_interval_seconds: Seconds = Field(default=10, ge=5, le=60)
    flush_interval_seconds: Seconds = Field(default=10, ge=1, le=60)
    probe_timeout_seconds: Seconds = Field(default=5, ge=1, le=30)

    @model_validator(mode="after")
    def _probe_fits_in_interval(self) -> MonitoringSettings:
        if self.probe_timeout_seconds >= self.collection_interval_seconds:
            raise ValueError(
                f"probeTimeoutSeconds ({self.probe_timeout_seconds}) must be shorter than "
                f"collectionIntervalSeconds ({self.collection_interval_seconds})"
            )
        return self


# Where Route 53 can probe from (its health checkers' regions).
Route53Region = Literal[
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
]


class WatcherSettings(ConfigModel):
    """Watching the environment from outside its host, on AWS: Route 53 probes of the public
    endpoints, a heartbeat from the collector, paging through SNS (components/observability/watcher.py)."""

    probe_interval_seconds: Literal[10, 30] = 30
    failure_threshold: int = Field(default=3, ge=1, le=10)
    probe_regions: list[Route53Region] = Field(
        default_factory=lambda: ["us-east-1", "eu-west-1", "ap-southeast-1"], min_length=3
    )
    # At most half a minute: every one-minute period of the heartbeat alarm holds a heartbeat.
    heartbeat_interval_seconds: Seconds = Field(default=30, ge=10, le=30)
    # Periods of one minute without a heartbeat before the alarm fires (missing data is breaching).
    heartbeat_missing_periods: int = Field(default=2, ge=1, le=10)
    email_to: list[EmailAddress] = Field(default_factory=list)

    @field_validator("probe_regions")
    @classmethod
    def _distinct(cls, regions: list[str]) -> list[str]:
        if len(set(regions)) != len(regions):
            raise ValueError("expected distinct regions")
        return regions


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


class SmtpSettings(ConfigModel):
    host: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+:\d{2,5}$")]
    user: NonEmptyText | None = None
    from_address: EmailAddress


class AlertingSettings(ConfigModel):
    """Grafana alerting: how fast rules evaluate and notify, thresholds, and the e-mail channel."""

    evaluation_interval_seconds: Seconds = Field(default=30, ge=10, le=600)
    critical_pending_seconds: Seconds = Field(default=60, ge=0, le=3600)
    warning_pending_seconds: Seconds = Field(default=300, ge=0, le=86400)
    group_wait_seconds: Seconds = Field(default=30, ge=0, le=600)
    group_interval_seconds: Seconds = Field(default=300, ge=10, le=86400)
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
