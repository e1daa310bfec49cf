"""The one typed view of a stack's config.

Every value the program uses is read here, once, and validated before any resource is
declared. Staging and prod differ only in what their `Pulumi.<stack>.yaml` sets: nothing in
the program looks at the stack's name.

- `types`: the validated types every section shares (a pinned image, an e-mail address, ...);
- one module per group of sections (`data`, `observability`, `app`, `backup`, `secrets`);
- `root`: the `Settings` model that holds them; `loader`: reading and reporting.
"""

from components.settings.app import AppSettings, CanaryPolicy, CanarySettings, EdgeSettings, WebSettings, WorkerSettings
from components.settings.backup import RUNNER_BASE_MEMORY_MB, BackupSettings, PitrSettings, StagingSeedSettings
from components.settings.data import InfluxDbSettings, PostgresSettings, RedisSettings, RedpandaSettings
from components.settings.loader import NAMESPACE, ConfigError, load_settings, read_pulumi_config
from components.settings.observability import (
    AlertingSettings,
    AlertThresholds,
    GrafanaSettings,
    LogsSettings,
    MonitoringSettings,
    SmtpSettings,
    Tiers,
    WatcherSettings,
)
from components.settings.root import AWS_REGION_KEY, DeploySettings, LogRotationSettings, Settings
from components.settings.secrets import (
    GENERATED_SECRET_NAMES,
    NOT_ROTATABLE,
    PROVIDED_SECRET_KEYS,
    ROTATABLE_SECRETS,
    ProvidedSecrets,
)
from components.settings.types import PROJECT, PinnedImage, validate_image

__all__ = [
    "AWS_REGION_KEY",
    "GENERATED_SECRET_NAMES",
    "NAMESPACE",
    "NOT_ROTATABLE",
    "PROJECT",
    "PROVIDED_SECRET_KEYS",
    "ROTATABLE_SECRETS",
    "RUNNER_BASE_MEMORY_MB",
    "AlertThresholds",
    "AlertingSettings",
    "AppSettings",
    "BackupSettings",
    "CanaryPolicy",
    "CanarySettings",
    "ConfigError",
    "DeploySettings",
    "EdgeSettings",
    "GrafanaSettings",
    "InfluxDbSettings",
    "LogRotationSettings",
    "LogsSettings",
    "MonitoringSettings",
    "PinnedImage",
    "PitrSettings",
    "PostgresSettings",
    "ProvidedSecrets",
    "RedisSettings",
    "RedpandaSettings",
    "Settings",
    "SmtpSettings",
    "StagingSeedSettings",
    "Tiers",
    "WatcherSettings",
    "WebSettings",
    "WorkerSettings",
    "load_settings",
    "read_pulumi_config",
    "validate_image",
]
