"""Secrets: one set per environment in Secrets Manager, encrypted with that environment's key,
and never shown in plain text by the plan, the outputs, labels or env."""

from __future__ import annotations

import logging

import pytest

from components.lib import tokens
from components.platform.secrets import GENERATED_SECRETS
from components.settings import load_settings
from harness.mock_engine import Plan, fake_secret, iter_strings, load_stack_config, run_program
from tests.helpers import containers, labels

PROVIDED = {
    "audit-x:sentryDsn": "https://sentrykey0001@o1.ingest.sentry.io/7",
    "audit-x:slackWebhookUrl": "https://hooks.slack.com/services/T000/B000/slacksecret0001",
    "audit-x:pagerdutyRoutingKey": "pdkey0001pdkey0001pdkey0001pdkey",
    "audit-x:smtpPassword": "smtp-secret-0001",
}


@pytest.fixture(scope="module")
def plan_with_provided() -> Plan:
    return run_program("prod", secrets=PROVIDED)


def secret_names(plan: Plan) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in plan.of_type(tokens.SECRET)}


# The access keys of the identities on the host: the backup runner's two, the heartbeat's.
ACCESS_KEYS = ("backup-writer-access-key", "backup-reader-access-key", "heartbeat-access-key", "pgbackrest-access-key")


def seed_secrets(stack: str) -> list[str]:
    """By the stack's stagingSeed config: the masking key where it makes seeds, the seed
    reader's access key where it loads them (components/backups/staging_seed.py)."""
    seed = load_settings(load_stack_config(stack)).staging_seed
    if seed is None:
        return []
    return ["staging-seed-masking-key"] if seed.rules else ["seed-reader-access-key"]


def test_generated_secrets_are_stored_per_environment(plan: Plan, stack: str) -> None:
    names = secret_names(plan)
    expected = {
        f"audit-x/{stack}/{name}"
        for name in [spec.name for spec in GENERATED_SECRETS] + list(ACCESS_KEYS) + seed_secrets(stack)
    }
    assert expected == set(names)
    assert len(names) >= 5


def test_secrets_use_the_environments_kms_key_and_configured_recovery_window(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    key_arn = plan.outputs["kmsKeyArn"]
    for inputs in secret_names(plan).values():
        assert inputs["kmsKeyId"] == key_arn
        assert inputs["recoveryWindowInDays"] == settings.secret_recovery_window_days
        assert inputs["tags"] == {"Project": "audit-x", "Environment": stack, "ManagedBy": "pulumi"}


def test_each_environment_has_its_own_kms_key(plans: dict[str, Plan]) -> None:
    keys = {stack: plan.outputs["kmsKeyArn"] for stack, plan in plans.items()}
    assert len(set(keys.values())) == len(keys)
    for stack, plan in plans.items():
        key = plan.named(f"audit-x-{stack}-kms")
        assert key.inputs["enableKeyRotation"] is True
        assert plan.named(f"audit-x-{stack}-kms-alias").inputs["name"] == f"alias/audit-x-{stack}"


def test_generated_passwords_are_long_and_url_safe(plan: Plan) -> None:
    for password in plan.of_type(tokens.RANDOM_PASSWORD):
        assert password.inputs["length"] >= 40
        assert password.inputs["special"] is False


def test_secret_versions_carry_secret_values(plan: Plan, stack: str) -> None:
    versions = plan.of_type(tokens.SECRET_VERSION)
    assert len(versions) == len(GENERATED_SECRETS) + len(ACCESS_KEYS) + len(seed_secrets(stack))
    for version in versions:
        assert version.inputs["secretString"] == "[secret]"
        assert "MOCKSECRET" in version.plain_inputs["secretString"]


def test_provided_secrets_are_stored_when_set(plan_with_provided: Plan) -> None:
    names = secret_names(plan_with_provided)
    for name in ("sentry-dsn", "slack-webhook-url", "pagerduty-routing-key", "smtp-password"):
        assert f"audit-x/prod/{name}" in names
    assert set(plan_with_provided.outputs["secretArns"]) >= {"sentry-dsn", "smtp-password"}


def test_outputs_give_arns_never_values(plan: Plan, stack: str) -> None:
    for name, arn in plan.outputs["secretArns"].items():
        assert arn.startswith(f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:audit-x/{stack}/{name}")


def known_secret_values(stack: str) -> list[str]:
    generated = [fake_secret(f"audit-x-{stack}-{spec.name}") for spec in GENERATED_SECRETS]
    access_keys = [fake_secret(f"audit-x-{stack}-backup-{role}-key") for role in ("writer", "reader")]
    return generated + access_keys + list(PROVIDED.values())


def leaks(values: list[str], haystack: object) -> list[str]:
    return [s for s in iter_strings(haystack) if any(v in s for v in values)]


def test_no_secret_value_in_the_plan_outputs_labels_or_env(plan_with_provided: Plan) -> None:
    secrets = known_secret_values("prod")
    # The mocks really did produce these values, and they reached the program's resources...
    assert leaks(secrets, [r.plain_inputs for r in plan_with_provided.resources])
    # ...but none is visible in what the plan shows or the stack exports.
    assert leaks(secrets, plan_with_provided.as_json()) == []
    assert leaks(secrets, plan_with_provided.outputs) == []
    for resource in containers(plan_with_provided):
        assert leaks(secrets, labels(resource)) == []
        assert leaks(secrets, resource.inputs.get("envs", [])) == []
        assert leaks(secrets, resource.inputs.get("command", [])) == []


def test_secret_outputs_are_masked_even_in_plain_outputs(plan: Plan, stack: str) -> None:
    # Exported values are names and ARNs: nothing exported is secret, and nothing secret exported.
    assert leaks(known_secret_values(stack), plan.plain_outputs) == []


def test_the_program_logs_no_secret_value(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.DEBUG):
        run_program("prod", secrets=PROVIDED)
    captured = capsys.readouterr()
    logged = [record.getMessage() for record in caplog.records] + [captured.out, captured.err]
    assert leaks(known_secret_values("prod"), logged) == []


def test_environments_share_no_secret_key_or_identity(plans: dict[str, Plan]) -> None:
    def names(plan: Plan, type_: str, field: str) -> set[str]:
        return {r.inputs[field] for r in plan.of_type(type_)}

    for type_, field in (
        (tokens.SECRET, "name"),
        (tokens.IAM_USER, "name"),
        (tokens.KMS_ALIAS, "name"),
    ):
        assert names(plans["staging"], type_, field).isdisjoint(names(plans["prod"], type_, field)), type_
    assert plans["staging"].outputs["kmsKeyArn"] != plans["prod"].outputs["kmsKeyArn"]
