"""The root of a stack's config: one model, holding one section per concern."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from components.settings.app import AppSettings, EdgeSettings
from components.settings.backup import BackupSettings, PitrSettings, StagingSeedSettings
from components.settings.data import InfluxDbSettings, PostgresSettings, RedisSettings, RedpandaSettings
from components.settings.observability import (
    AlertingSettings,
    GrafanaSettings,
    LogsSettings,
    MonitoringSettings,
    WatcherSettings,
)
from components.settings.secrets import ProvidedSecrets, check_rotation
from components.settings.types import ConfigModel, DnsName, DockerHost

AWS_REGION_KEY = "aws:region"

RotationMarker = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class LogRotationSettings(ConfigModel):
    """json-file log rotation applied to every container."""

    max_size_mb: int = Field(default=20, ge=1, le=1024)
    max_files: int = Field(default=5, ge=1, le=50)


class DeploySettings(ConfigModel):
    """How `pulumi up` runs the one-shot jobs (migration, backups, password and routes jobs)."""

    # A job that failed keeps its exit code in the state and is not run again while nothing it
    # is made of changes; a new marker (any text) runs every job again (docs/deploy.md).
    rerun_jobs: Annotated[str, StringConstraints(max_length=64)] = ""


class Settings(ConfigModel):
    environment: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]
    aws_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] = Field(alias=AWS_REGION_KEY)
    docker_host: DockerHost
    domain: DnsName
    protect_stateful_resources: bool
    secret_recovery_window_days: int = Field(default=30)
    kms_deletion_window_days: int = Field(default=30, ge=7, le=30)
    log_rotation: LogRotationSettings = LogRotationSettings()
    deploy: DeploySettings = DeploySettings()
    postgres: PostgresSettings
    redis: RedisSettings
    redpanda: RedpandaSettings
    influxdb: InfluxDbSettings
    grafana: GrafanaSettings = GrafanaSettings()
    logs: LogsSettings
    monitoring: MonitoringSettings
    alerting: AlertingSettings = AlertingSettings()
    watcher: WatcherSettings = WatcherSettings()
    edge: EdgeSettings
    app: AppSettings
    backup: BackupSettings
    pitr: PitrSettings = PitrSettings()
    # Where staging's data comes from: prod's rules (absent in staging, which only loads a seed).
    staging_seed: StagingSeedSettings | None = None
    provided_secrets: ProvidedSecrets = ProvidedSecrets()
    # Generated secret name -> a rotation marker (a date, say). Changing a marker generates a new
    # value for that secret on the next `pulumi up` (docs/secret-rotation.md).
    rotation: Annotated[dict[str, RotationMarker], AfterValidator(check_rotation)] = Field(default_factory=dict)

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
