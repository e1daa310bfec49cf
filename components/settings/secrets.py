"""The secrets the program generates, those operators provide, and which can be rotated."""

from __future__ import annotations

import re

from pydantic import SecretStr, field_validator

from components.settings.types import ConfigModel

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


def check_rotation(value: dict[str, str]) -> dict[str, str]:
    refused = [f"{name} ({NOT_ROTATABLE[name]})" for name in sorted(value) if name in NOT_ROTATABLE]
    unknown = sorted(set(value) - set(ROTATABLE_SECRETS) - set(NOT_ROTATABLE))
    if refused or unknown:
        raise ValueError(
            f"cannot rotate {', '.join(refused + unknown)}: expected names among {', '.join(ROTATABLE_SECRETS)}"
        )
    return value
