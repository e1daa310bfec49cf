"""Secrets: one set per environment in Secrets Manager, encrypted with that environment's key,
and never shown in plain text by the plan, the outputs, labels or env.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
the key, the generated and provided secrets, rotation and protection."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from components.lib import tokens
from components.platform.secrets import GENERATED_SECRETS, Secrets
from components.settings import ProvidedSecrets, load_settings
from harness.mock_engine import (
    Plan,
    fake_secret,
    iter_strings,
    load_stack_config,
    mock_kms_key_arn,
    mock_kms_key_id,
    run_component,
    run_program,
)
from tests.helpers import children, component_context, containers, declared, generated, labels

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


# --- built alone -------------------------------------------------------------------------------

GENERATED_LENGTHS = {
    "postgres-password": 40,
    "postgres-login-a": 40,
    "postgres-login-b": 40,
    "redis-password": 40,
    "redis-password-b": 40,
    "influxdb-admin-password": 40,
    "influxdb-operator-token": 64,
    "grafana-admin-password": 40,
    "secret-key-base": 128,
    "pgbackrest-cipher-pass": 64,
}
SLACK_URL = "https://hooks.slack.com/services/T0/B0/alone-slack-secret"


def build_secrets(
    provided: ProvidedSecrets | None = None, rotation: dict[str, str] | None = None, *, protect: bool = False
) -> Plan:
    def declare() -> None:
        Secrets(
            "audit-x-test-secrets",
            provided or ProvidedSecrets(),
            ctx=component_context(protect_stateful=protect),
            rotation=rotation or {},
            recovery_window_days=14,
            kms_deletion_window_days=10,
        )

    return run_component(declare)


def stored_values(plan: Plan) -> dict[str, str]:
    """Each version's plain value, by the secret's name (audit-x-test-secret-<name>-version)."""
    return {
        r.name.removeprefix("audit-x-test-secret-").removesuffix("-version"): r.plain_inputs["secretString"]
        for r in plan.of_type(tokens.SECRET_VERSION)
    }


def test_secrets_alone_declare_their_key_its_alias_and_every_generated_secret() -> None:
    plan = build_secrets()
    assert children(plan, "audit-x-test-secrets") == sorted(
        [
            (tokens.KMS_KEY, "audit-x-test-kms"),
            (tokens.KMS_ALIAS, "audit-x-test-kms-alias"),
            *[(tokens.RANDOM_PASSWORD, f"audit-x-test-{name}") for name in GENERATED_LENGTHS],
            *[(tokens.SECRET, f"audit-x-test-secret-{name}") for name in GENERATED_LENGTHS],
            *[(tokens.SECRET_VERSION, f"audit-x-test-secret-{name}-version") for name in GENERATED_LENGTHS],
        ]
    )
    key = declared(plan, tokens.KMS_KEY, "audit-x-test-kms")
    assert {k: key.inputs[k] for k in ("deletionWindowInDays", "enableKeyRotation", "description")} == {
        "deletionWindowInDays": 10,
        "enableKeyRotation": True,
        "description": "Encrypts the secrets and backups of audit-x test",
    }
    alias = declared(plan, tokens.KMS_ALIAS, "audit-x-test-kms-alias")
    assert (alias.inputs["name"], alias.inputs["targetKeyId"]) == (
        "alias/audit-x-test",
        mock_kms_key_id("audit-x-test-kms"),
    )
    passwords = {r.name.removeprefix("audit-x-test-"): r.inputs for r in plan.of_type(tokens.RANDOM_PASSWORD)}
    assert {name: inputs["length"] for name, inputs in passwords.items()} == GENERATED_LENGTHS
    assert {
        (inputs["special"], inputs["minLower"], inputs["minUpper"], inputs["minNumeric"])
        for inputs in passwords.values()
    } == {(False, 4, 4, 4)}
    for name in GENERATED_LENGTHS:
        secret = declared(plan, tokens.SECRET, f"audit-x-test-secret-{name}")
        assert {k: secret.inputs[k] for k in ("name", "kmsKeyId", "recoveryWindowInDays")} == {
            "name": f"audit-x/test/{name}",
            "kmsKeyId": mock_kms_key_arn("audit-x-test-kms"),
            "recoveryWindowInDays": 14,
        }
        version = declared(plan, tokens.SECRET_VERSION, f"audit-x-test-secret-{name}-version")
        assert version.inputs["secretString"] == "[secret]"
    # A credential used in turn is kept by the generation its slot was made at; every other by its marker.
    alternating = {
        "postgres-login-a": {"generation": "0"},
        "postgres-login-b": {"generation": "-1"},
        "redis-password": {"rotation": "initial"},
        "redis-password-b": {"generation": "-1"},
    }
    assert {name: inputs["keepers"] for name, inputs in passwords.items()} == {
        name: alternating.get(name, {"rotation": "initial"}) for name in GENERATED_LENGTHS
    }
    values = stored_values(plan)
    assert {name: values[name] for name in GENERATED_LENGTHS if name not in alternating} == {
        name: generated(component_context(), name) for name in GENERATED_LENGTHS if name not in alternating
    }
    assert len(set(values.values())) == len(GENERATED_LENGTHS)


def test_a_provided_secret_is_stored_only_when_given() -> None:
    plan = build_secrets(ProvidedSecrets(slack_webhook_url=SecretStr(SLACK_URL)))
    assert set(stored_values(plan)) == {*GENERATED_LENGTHS, "slack-webhook-url"}
    assert stored_values(plan)["slack-webhook-url"] == SLACK_URL
    slack = declared(plan, tokens.SECRET, "audit-x-test-secret-slack-webhook-url")
    assert (slack.inputs["name"], slack.inputs["description"]) == (
        "audit-x/test/slack-webhook-url",
        "provided by operators with `pulumi config set --secret`",
    )
    assert SLACK_URL not in str([r.inputs for r in plan.resources])


def test_a_rotation_marker_gives_a_new_value_to_the_secret_it_names_and_no_other() -> None:
    before = stored_values(build_secrets())
    after = stored_values(build_secrets(rotation={"grafana-admin-password": "2026-03"}))
    assert sorted(name for name in before if before[name] != after[name]) == ["grafana-admin-password"]


def test_a_protected_environment_protects_its_key_and_secrets_and_leaves_versions_replaceable() -> None:
    plan = build_secrets(protect=True)
    protected = sorted(r.name for r in plan.resources if r.protect and r.retain_on_delete)
    assert protected == sorted(["audit-x-test-kms", *[f"audit-x-test-secret-{name}" for name in GENERATED_LENGTHS]])
    assert not any(r.protect for r in plan.of_type(tokens.SECRET_VERSION) + plan.of_type(tokens.RANDOM_PASSWORD))
