"""Config is validated once, up front: every problem named by key, value and expectation."""

from __future__ import annotations

import json

import pytest

from components.settings import ConfigError, load_settings
from harness.mock_engine import load_stack_config, run_program, try_program
from tests.components.settings.invalid_configs import INVALID_CONFIGS


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
