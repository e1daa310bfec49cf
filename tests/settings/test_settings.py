"""Config is validated once, up front: every problem named by key, value and expectation."""

from __future__ import annotations

import json

import pytest

from components.settings import ConfigError, load_settings
from tools.mock_engine import load_stack_config, run_program, try_program


def staging_with(**changes: object) -> dict[str, str]:
    """Staging's real config with keys replaced (`None` removes a key). Objects are merged."""
    config = load_stack_config("staging")
    for dotted, value in changes.items():
        key, _, field = dotted.replace("__", ".").partition(".")
        full_key = key if ":" in key else f"audit-x:{key}"
        if field:
            document = json.loads(config[full_key])
            target = document
            *path, last = field.split(".")
            for part in path:
                target = target[int(part)] if part.isdigit() else target[part]
            if value is None:
                del target[last]
            else:
                target[last] = value
            config[full_key] = json.dumps(document)
        elif value is None:
            config.pop(full_key, None)
        else:
            config[full_key] = value if isinstance(value, str) else json.dumps(value)
    return config


def problems_for(config: dict[str, str], secret_keys: frozenset[str] = frozenset()) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_settings(config, secret_keys)
    return raised.value.problems


def test_both_stack_files_are_valid() -> None:
    for stack in ("staging", "prod"):
        settings = load_settings(load_stack_config(stack))
        assert settings.environment == stack


def test_defaults_fill_optional_keys() -> None:
    settings = load_settings(load_stack_config("staging"))
    assert settings.grafana.image == "grafana/grafana:11.6.0"
    assert settings.postgres.user == "audit_x"
    assert settings.app.web.health_timeout_seconds == 120
    assert settings.provided_secrets.present() == {}


# (description, config changes, the key the message must name, a fragment of what was expected)
INVALID_CONFIGS = [
    ("missing environment", {"environment": None}, "audit-x:environment: missing", "required"),
    ("environment with capitals", {"environment": "Prod"}, "audit-x:environment = 'Prod'", "pattern"),
    ("missing region", {"aws:region": None}, "aws:region: missing", "required"),
    ("bad region", {"aws:region": "europe"}, "aws:region = 'europe'", "pattern"),
    ("docker host without scheme", {"dockerHost": "docker.example.com"}, "audit-x:dockerHost", "pattern"),
    ("domain with a path", {"domain": "example.com/app"}, "audit-x:domain", "pattern"),
    ("protection not a bool", {"protectStatefulResources": "sometimes"}, "audit-x:protectStatefulResources", "bool"),
    (
        "recovery window of 3 days",
        {"secretRecoveryWindowDays": "3"},
        "audit-x:secretRecoveryWindowDays = '3'",
        "7 to 30",
    ),
    (
        "kms window too long",
        {"kmsDeletionWindowDays": "45"},
        "audit-x:kmsDeletionWindowDays",
        "less than or equal to 30",
    ),
    ("app image on latest", {"app.image": "ghcr.io/audit-x/audit_x:latest"}, "audit-x:app.image", "not 'latest'"),
    ("app image without tag", {"app.image": "ghcr.io/audit-x/audit_x"}, "audit-x:app.image", "pinned"),
    ("postgres image on latest", {"postgres.image": "postgres:latest"}, "audit-x:postgres.image", "not 'latest'"),
    ("influxdb 1.x image", {"influxdb.image": "influxdb:1.8.10"}, "audit-x:influxdb.image", "2.x"),
    (
        "postgres memory not a number",
        {"postgres.memoryLimitMb": "lots"},
        "audit-x:postgres.memoryLimitMb = 'lots'",
        "integer",
    ),
    (
        "postgres memory too small",
        {"postgres.memoryLimitMb": 64},
        "audit-x:postgres.memoryLimitMb = 64",
        "greater than or equal to 256",
    ),
    ("shared buffers over 40%", {"postgres.sharedBuffersMb": 900}, "audit-x:postgres", "40%"),
    ("redis maxmemory over limit", {"redis.maxMemoryMb": 250}, "audit-x:redis", "75%"),
    ("redpanda without headroom", {"redpanda.memoryLimitMb": 1100}, "audit-x:redpanda", "at least 256"),
    ("zero web replicas", {"app.web.replicas": 0}, "audit-x:app.web.replicas = 0", "greater than or equal to 1"),
    ("web port privileged", {"app.web.port": 80}, "audit-x:app.web.port = 80", "greater than or equal to 1024"),
    ("no workers", {"app.workers": []}, "audit-x:app.workers", "at least 1"),
    ("worker without command", {"app.workers.0.command": []}, "audit-x:app.workers.0.command", "at least 1"),
    ("worker named web", {"app.workers.0.name": "web"}, "audit-x:app.workers", "reserved"),
    ("duplicate worker names", {"app.workers.1.name": "sidekiq"}, "audit-x:app.workers", "unique"),
    ("missing bucket name", {"backup.bucketName": None}, "audit-x:backup.bucketName: missing", "required"),
    ("bucket name with capitals", {"backup.bucketName": "Audit_X"}, "audit-x:backup.bucketName = 'Audit_X'", "pattern"),
    ("zero daily copies", {"backup.dailyCopies": 0}, "audit-x:backup.dailyCopies = 0", "greater than or equal to 1"),
    (
        "backup parts over the memory limit",
        {"backup.partSizeMb": 128},
        "audit-x:backup",
        "memoryLimitMb (384) must hold 3 parts of partSizeMb (128) plus 128 MB for the runner itself: at least 512",
    ),
    (
        "unpinned Docker API proxy",
        {"monitoring.dockerApiProxyImage": "ghcr.io/tecnativa/docker-socket-proxy:latest"},
        "audit-x:monitoring.dockerApiProxyImage = 'ghcr.io/tecnativa/docker-socket-proxy:latest'",
        "not 'latest'",
    ),
    (
        "postgres rotation marker not a generation",
        {"rotation": {"postgres-password": "2026-12-01"}},
        "audit-x:rotation",
        "expected a generation number",
    ),
    ("probe slower than collection", {"monitoring.probeTimeoutSeconds": 10}, "audit-x:monitoring", "shorter than"),
    (
        "unpinned collector",
        {"monitoring.collectorImage": "telegraf"},
        "audit-x:monitoring.collectorImage = 'telegraf'",
        "pinned",
    ),
    (
        "evaluation off the 10 s tick",
        {"alerting.evaluationIntervalSeconds": 45},
        "audit-x:alerting.evaluationIntervalSeconds = 45",
        "multiple of 10",
    ),
    (
        "critical below warning",
        {"alerting": {"thresholds": {"diskPercent": {"warning": 90, "critical": 80}}}},
        "audit-x:alerting.thresholds.diskPercent",
        "critical (80) must be above warning (90)",
    ),
    ("e-mail without smtp", {"alerting.smtp": None}, "audit-x:alerting", "emailTo is set but smtp is not"),
    ("bad alert address", {"alerting.emailTo": ["ops"]}, "audit-x:alerting.emailTo.0 = 'ops'", "pattern"),
    (
        "nobody gets warnings",
        {"alerting.emailTo": [], "alerting.smtp": None},
        "audit-x:alerting.emailTo = []",
        "no channel for warnings",
    ),
    ("typo in a key", {"postgress": {"memoryLimitMb": 1}}, "audit-x:postgress: unknown key", "expected one of"),
    ("typo in a nested key", {"redis.maxMemoryMB": 100}, "audit-x:redis.maxMemoryMB", "Extra inputs are not permitted"),
    (
        "app not an object",
        {"app": "ghcr.io/audit-x/audit_x:1.0"},
        "audit-x:app = 'ghcr.io/audit-x/audit_x:1.0'",
        "dictionary",
    ),
]


@pytest.mark.parametrize(
    ("changes", "key", "expected"), [c[1:] for c in INVALID_CONFIGS], ids=[c[0] for c in INVALID_CONFIGS]
)
def test_invalid_config_names_key_value_and_expectation(changes: dict[str, object], key: str, expected: str) -> None:
    problems = problems_for(staging_with(**changes))
    matching = [p for p in problems if p.startswith(key)]
    assert matching, f"no problem names {key!r}: {problems}"
    assert any(expected in p for p in matching), f"{matching} does not say {expected!r}"


def test_every_problem_is_reported_at_once() -> None:
    config = staging_with(environment="Bad Name", **{"app.image": "x:latest", "postgres.memoryLimitMb": "lots"})
    problems = problems_for(config)
    assert len(problems) == 3
    message = str(ConfigError(problems))
    assert message.startswith("Invalid stack config (3 problems); nothing was declared:")


def test_invalid_config_declares_nothing() -> None:
    plan, error = try_program("staging", config=staging_with(**{"app.image": "x:latest"}))
    assert isinstance(error, ConfigError)
    assert plan.resources == []
    # A fresh run with the same engine afterwards still works: nothing half-declared lingers.
    assert run_program("staging").resources


def test_provided_secret_in_plain_text_is_refused_without_echoing_it() -> None:
    config = staging_with(slackWebhookUrl="https://hooks.slack.com/services/T0/B0/plaintextvalue")
    problems = problems_for(config)
    assert problems == [
        "audit-x:slackWebhookUrl is stored in plain text: expected a secret, set it with "
        "`pulumi config set --secret slackWebhookUrl ...`"
    ]
    assert "plaintextvalue" not in str(ConfigError(problems))


def test_invalid_provided_secret_is_named_but_masked() -> None:
    config = staging_with(slackWebhookUrl="https://example.com/hook-value-xyz")
    problems = problems_for(config, frozenset({"audit-x:slackWebhookUrl"}))
    assert len(problems) == 1
    assert problems[0].startswith("audit-x:slackWebhookUrl = [secret]: expected a Slack incoming-webhook URL")
    assert "hook-value-xyz" not in problems[0]


def test_provided_secrets_are_optional_and_typed() -> None:
    key = "0123456789abcdef0123456789ABCDEF"
    settings = load_settings(staging_with(pagerdutyRoutingKey=key), frozenset({"audit-x:pagerdutyRoutingKey"}))
    present = settings.provided_secrets.present()
    assert list(present) == ["pagerduty-routing-key"]
    assert present["pagerduty-routing-key"].get_secret_value() == key
    assert key not in repr(settings)
