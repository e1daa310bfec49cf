"""Reading a stack's config, validating it once, and reporting every problem at once.

`load_settings(raw, secret_keys)` takes config the way Pulumi hands it to a program (a flat
map of `namespace:key` to string, structured values as JSON) so it can be called from the
program, from the offline plan and from tests alike. Every problem is collected and reported
in one `ConfigError` that names the key, the value given and what was expected; values of
secret keys are never echoed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from components.settings.root import AWS_REGION_KEY, Settings
from components.settings.secrets import PROVIDED_SECRET_KEYS
from components.settings.types import PROJECT

NAMESPACE = f"{PROJECT}:"


class ConfigError(pulumi.RunError):
    """Invalid stack config. A RunError, so Pulumi prints the message without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(
            f"Invalid stack config ({count}); nothing was declared:\n" + "\n".join(f"  - {p}" for p in problems)
        )


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
    problems += _alert_channel_problems(settings) + _noncurrent_version_problems(settings)
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


def _noncurrent_version_problems(settings: Settings) -> list[str]:
    """A version a delete marker or an overwrite hides must stay as long as the PITR window needs
    it, whatever its lock: the lifecycle removes noncurrent versions this many days later."""
    floor = settings.pitr.repository_lock_days
    days = settings.backup.noncurrent_version_days
    if days >= floor:
        return []
    return [
        f"{NAMESPACE}backup.noncurrentVersionDays = {days}: expected at least {floor} (pitr.retentionDays "
        f"{settings.pitr.retention_days} + the 7 days between full backups), or a hidden WAL segment or full "
        "backup of the window could be removed before the window has passed"
    ]


def read_pulumi_config() -> tuple[dict[str, Any], set[str]]:
    """The current program's config, as the Pulumi engine handed it over, and its secret keys."""
    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = {key for key in raw if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    return raw, secret_keys
