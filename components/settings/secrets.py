"""The secrets the program generates, those operators provide, and which can be rotated."""

from __future__ import annotations

import re

from pydantic import SecretStr, field_validator

from components.settings.types import ConfigModel

# The app's two PostgreSQL logins, used in turn (components/data/postgres.py): a rotation gives
# the new password to the login not in use, so running consumers never hold a refused one.
LOGIN_SLOTS = ("a", "b")
POSTGRES_ROTATION = "postgres-password"

# The generated secrets (components/platform/secrets.py generates them, under these names).
GENERATED_SECRET_NAMES = (
    "postgres-password",
    "postgres-login-a",
    "postgres-login-b",
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
    "postgres-login-a": "rotation.postgres-password rotates the logins in turn",
    "postgres-login-b": "rotation.postgres-password rotates the logins in turn",
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


def postgres_generation(rotation: dict[str, str]) -> int:
    """How many times the PostgreSQL logins were rotated (0 until the first rotation)."""
    return int(rotation.get(POSTGRES_ROTATION, "0"))


def active_login_slot(generation: int) -> str:
    """The login the consumers use at this generation: a and b in turn."""
    return LOGIN_SLOTS[generation % len(LOGIN_SLOTS)]


def login_generations(generation: int) -> dict[str, int]:
    """The generation each login's password was made at: the active one's is this generation,
    the other keeps the previous one (its password does not change while it may still be in use)."""
    active = active_login_slot(generation)
    return {slot: generation if slot == active else generation - 1 for slot in LOGIN_SLOTS}


def check_rotation(value: dict[str, str]) -> dict[str, str]:
    marker = value.get(POSTGRES_ROTATION)
    if marker is not None and not (marker.isdigit() and int(marker) >= 1):
        raise ValueError(
            f"{POSTGRES_ROTATION} = {marker!r}: expected a generation number (1, then 2, ...): each rotation "
            "adds one, and the new password goes to the login not in use"
        )
    refused = [f"{name} ({NOT_ROTATABLE[name]})" for name in sorted(value) if name in NOT_ROTATABLE]
    unknown = sorted(set(value) - set(ROTATABLE_SECRETS) - set(NOT_ROTATABLE))
    if refused or unknown:
        raise ValueError(
            f"cannot rotate {', '.join(refused + unknown)}: expected names among {', '.join(ROTATABLE_SECRETS)}"
        )
    return value
