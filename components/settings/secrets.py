"""The secrets the program generates, those operators provide, and which can be rotated."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import SecretStr, field_validator

from components.settings.types import ConfigModel

# Credentials used in turn (alternating users, as AWS Secrets Manager's own rotation does): two
# passwords the server accepts at once, consumers using one of them; a rotation gives a new value
# to the one not in use, so no running consumer ever holds a password its server refuses.
# rotation marker -> the generated secrets of slots a and b. Redis's slot a is the secret it had
# before it had two, so the first deploy with two changes no password in use.
SLOTS = ("a", "b")
ALTERNATING = {
    "postgres-password": ("postgres-login-a", "postgres-login-b"),  # components/data/postgres.py
    "redis-password": ("redis-password", "redis-password-b"),  # components/data/redis.py
}

# The generated secrets (components/platform/secrets.py generates them, under these names).
GENERATED_SECRET_NAMES = (
    "postgres-password",
    "postgres-login-a",
    "postgres-login-b",
    "redis-password",
    "redis-password-b",
    "influxdb-admin-password",
    "influxdb-operator-token",
    "grafana-admin-password",
    "secret-key-base",
    "pgbackrest-cipher-pass",
)
# Those the program can rotate so that the new value takes effect where it is used. InfluxDB
# applies its user's password and operator token only at setup: a new value would lock every
# consumer out (docs/secret-rotation.md says how to rotate them by hand).
NOT_ROTATABLE = {
    "postgres-login-a": "rotation.postgres-password rotates the logins in turn",
    "postgres-login-b": "rotation.postgres-password rotates the logins in turn",
    "redis-password-b": "rotation.redis-password rotates the two passwords in turn",
    "influxdb-admin-password": "InfluxDB sets it only at first setup",
    "influxdb-operator-token": "InfluxDB sets it only at first setup",
    "pgbackrest-cipher-pass": "pgBackRest encrypts its repository with it: a new one cannot read the backups made",
}
ROTATABLE_SECRETS = tuple(name for name in GENERATED_SECRET_NAMES if name not in NOT_ROTATABLE)

# Provided secrets: set by operators with `pulumi config set --secret KEY VALUE`, all optional.
PROVIDED_SECRET_KEYS = (
    "sentryDsn",
    "slackWebhookUrl",
    "pagerdutyRoutingKey",
    "smtpPassword",
    "pagerdutyCloudwatchUrl",
)


class ProvidedSecrets(ConfigModel):
    """Secrets operators provide with `pulumi config set --secret`; each may be absent."""

    sentry_dsn: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    smtp_password: SecretStr | None = None
    # PagerDuty's CloudWatch integration endpoint (it holds the integration key): the external
    # watcher's SNS topic pages through it (components/observability/watcher.py).
    pagerduty_cloudwatch_url: SecretStr | None = None

    @field_validator("pagerduty_cloudwatch_url")
    @classmethod
    def _pagerduty_cloudwatch_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"https://events\.pagerduty\.com/integration/[A-Za-z0-9]{32}/enqueue", value.get_secret_value()
        ):
            raise ValueError(
                "expected PagerDuty's CloudWatch integration URL, https://events.pagerduty.com/integration/<key>/enqueue"
            )
        return value

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
            "pagerduty-cloudwatch-url": self.pagerduty_cloudwatch_url,
        }
        return {name: value for name, value in values.items() if value is not None}


def generation(rotation: Mapping[str, str], marker: str) -> int:
    """How many times an alternating credential was rotated (0 until its first rotation)."""
    return int(rotation.get(marker, "0"))


def active_slot(generation: int) -> str:
    """The slot consumers use at this generation: a and b in turn."""
    return SLOTS[generation % len(SLOTS)]


def slot_generations(generation: int) -> dict[str, int]:
    """The generation each slot's password was made at: the active one's is this generation, the
    other keeps the previous one (its password does not change while it may still be in use)."""
    active = active_slot(generation)
    return {slot: generation if slot == active else generation - 1 for slot in SLOTS}


def slot_keepers(name: str, rotation: Mapping[str, str]) -> dict[str, str] | None:
    """The keepers of an alternating credential's generated secret, or None for any other secret."""
    for marker, names in ALTERNATING.items():
        if name in names:
            slot = SLOTS[names.index(name)]
            made_at = slot_generations(generation(rotation, marker))[slot]
            if name == marker and made_at == 0:
                return {"rotation": "initial"}  # the value it had as the only password
            return {"generation": str(made_at)}
    return None


def check_rotation(value: dict[str, str]) -> dict[str, str]:
    for name in ALTERNATING:
        marker = value.get(name)
        if marker is not None and not (marker.isdigit() and int(marker) >= 1):
            raise ValueError(
                f"{name} = {marker!r}: expected a generation number (1, then 2, ...): each rotation adds one, "
                "and the new password goes to the one of its two credentials not in use"
            )
    refused = [f"{name} ({NOT_ROTATABLE[name]})" for name in sorted(value) if name in NOT_ROTATABLE]
    unknown = sorted(set(value) - set(ROTATABLE_SECRETS) - set(NOT_ROTATABLE))
    if refused or unknown:
        raise ValueError(
            f"cannot rotate {', '.join(refused + unknown)}: expected names among {', '.join(ROTATABLE_SECRETS)}"
        )
    return value
