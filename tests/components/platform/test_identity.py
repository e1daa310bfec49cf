"""An AWS identity built alone: one user, its one inline policy and one access key, the key kept in
Secrets Manager (masked) and handed out as a shared-credentials profile."""

from __future__ import annotations

import json

import pulumi

from components.lib import tokens
from components.platform.identity import AccessKeyIdentity
from harness.mock_engine import Plan, fake_secret, run_component
from tests.helpers import children, clashes, component_context, declared, secrets

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]})
TAGS = {"Project": "audit-x", "Environment": "test", "ManagedBy": "pulumi"}


def build(*identities: tuple[str, str, str | None]) -> Plan:
    """Each identity as (name, stored_as, type_token or None for the platform's own)."""

    def declare() -> None:
        ctx = component_context()
        store = secrets(ctx)
        for name, stored_as, token in identities:
            purpose = f"key of {name}"
            identity = (
                AccessKeyIdentity(
                    name, ctx=ctx, policy=POLICY, secrets=store, stored_as=stored_as, purpose=purpose, type_token=token
                )
                if token
                else AccessKeyIdentity(
                    name, ctx=ctx, policy=POLICY, secrets=store, stored_as=stored_as, purpose=purpose
                )
            )
            pulumi.export(f"{name}-key-id", identity.access_key.id)
            pulumi.export(f"{name}-profile", identity.profile("reports"))

    return run_component(declare)


def test_identity_alone_declares_a_user_its_one_policy_and_one_key() -> None:
    plan = build(("audit-x-test-reports", "reports-access-key", None))
    assert children(plan, "audit-x-test-reports") == [
        (tokens.IAM_ACCESS_KEY, "audit-x-test-reports-key"),
        (tokens.IAM_USER, "audit-x-test-reports"),
        (tokens.IAM_USER_POLICY, "audit-x-test-reports-policy"),
    ]
    assert declared(plan, "audit-x:platform:AccessKeyIdentity", "audit-x-test-reports").parent == (
        "audit-x-component-test"
    )
    user = declared(plan, tokens.IAM_USER, "audit-x-test-reports")
    assert (user.inputs["name"], user.inputs["tags"]) == ("audit-x-test-reports", TAGS)
    policy = declared(plan, tokens.IAM_USER_POLICY, "audit-x-test-reports-policy")
    assert (policy.inputs["user"], policy.inputs["policy"]) == ("audit-x-test-reports", POLICY)
    assert declared(plan, tokens.IAM_ACCESS_KEY, "audit-x-test-reports-key").inputs["user"] == "audit-x-test-reports"


def test_the_key_is_kept_in_secrets_manager_masked() -> None:
    plan = build(("audit-x-test-reports", "reports-access-key", None))
    secret = declared(plan, tokens.SECRET, "audit-x-test-secret-reports-access-key")
    assert (secret.parent, secret.inputs["name"], secret.inputs["description"]) == (
        "audit-x-test-secrets",
        "audit-x/test/reports-access-key",
        "key of audit-x-test-reports",
    )
    version = declared(plan, tokens.SECRET_VERSION, "audit-x-test-secret-reports-access-key-version")
    assert version.inputs["secretString"] == "[secret]"
    assert json.loads(version.plain_inputs["secretString"]) == {
        "access_key_id": plan.plain_outputs["audit-x-test-reports-key-id"],
        "secret_access_key": fake_secret("audit-x-test-reports-key"),
    }


def test_the_profile_is_a_shared_credentials_section_of_that_key() -> None:
    # Not asserted masked here: the key's `secret` is a secret output by the provider's schema
    # (additional_secret_outputs), which the real engine applies and the mock engine does not;
    # every container gets the profile as a SecretFile, masked either way.
    plan = build(("audit-x-test-reports", "reports-access-key", None))
    key_id = plan.plain_outputs["audit-x-test-reports-key-id"]
    assert key_id.startswith("AKIA")
    assert plan.plain_outputs["audit-x-test-reports-profile"] == (
        f"[reports]\naws_access_key_id = {key_id}\naws_secret_access_key = {fake_secret('audit-x-test-reports-key')}\n"
    )


def test_two_identities_side_by_side_keep_their_own_key_secret_and_type_token() -> None:
    plan = build(
        ("audit-x-test-reports", "reports-access-key", None),
        ("audit-x-test-backup-writer", "backup-writer-access-key", "audit-x:backup:BackupIdentity"),
    )
    assert clashes(plan) == []
    assert declared(plan, "audit-x:backup:BackupIdentity", "audit-x-test-backup-writer").type == (
        "audit-x:backup:BackupIdentity"
    )
    assert children(plan, "audit-x-test-backup-writer") == [
        (tokens.IAM_ACCESS_KEY, "audit-x-test-backup-writer-key"),
        (tokens.IAM_USER, "audit-x-test-backup-writer"),
        (tokens.IAM_USER_POLICY, "audit-x-test-backup-writer-policy"),
    ]
    stored = {r.inputs["name"] for r in plan.of_type(tokens.SECRET)}
    assert {"audit-x/test/reports-access-key", "audit-x/test/backup-writer-access-key"} <= stored
    ids = {plan.plain_outputs[f"{name}-key-id"] for name in ("audit-x-test-reports", "audit-x-test-backup-writer")}
    assert len(ids) == 2
