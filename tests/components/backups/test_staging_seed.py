"""Staging's seed as the program declares it (components/backups/staging_seed.py): what prod makes
and exports, what staging reads through its StackReference, and staging's first rollout.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
the source and the reader, before and after the source exports."""

from __future__ import annotations

import json

import pulumi
import pulumi_docker as docker

from components.backups.staging_seed import NOTHING_YET_POLICY, StagingSeedReader, StagingSeedSource
from components.lib import tokens
from components.settings import StagingSeedSettings
from harness import audit_dataset
from harness.mock_engine import Plan, fake_secret, iter_strings, mock_kms_key_arn, run_component, run_program
from runner import seed
from tests.helpers import (
    children,
    component_context,
    container,
    declared,
    env,
    generated,
    s3_bucket,
    secrets,
    upload,
    uploaded,
)

PROD_EXPORT = "audit-x/audit-x/prod"
MASKING_KEY_VALUE = fake_secret("audit-x-prod-staging-seed-masking-key")


def test_prod_makes_seeds_with_their_own_key_and_a_masking_key_of_its_own(plans: dict[str, Plan]) -> None:
    prod = plans["prod"]
    (key,) = [k for k in prod.of_type(tokens.KMS_KEY) if k.name == "audit-x-prod-staging-seed"]
    assert key.inputs["enableKeyRotation"] is True and key.protect
    assert prod.named("audit-x-prod-staging-seed-alias").inputs["name"] == "alias/audit-x-prod-staging-seed"
    masking = prod.named("audit-x-prod-staging-seed-masking-key")
    assert (masking.inputs["length"], masking.inputs["special"]) == (64, False)
    secret = prod.named("audit-x-prod-secret-staging-seed-masking-key")
    assert secret.inputs["name"] == "audit-x/prod/staging-seed-masking-key" and secret.protect
    runner = container(prod, "backup")
    variables = env(runner)
    assert variables["SEED_KMS_KEY_ID"] == mock_kms_key_arn("audit-x-prod-staging-seed")
    rules = json.loads(uploaded(runner, variables["SEED_RULES_FILE"]))
    assert rules == audit_dataset.MASKING_RULES and seed.parse_rules(rules)
    key_file = {u["file"]: u for u in runner.inputs["uploads"]}[variables["SEED_KEY_FILE"]]
    assert (key_file["content"], key_file["permissions"], key_file["owner"]) == ("[secret]", "0400", "999")
    assert prod.outputs["stagingSeed"] == {
        "bucket": "audit-x-prod-backups-euw1",
        "bucketArn": "arn:aws:s3:::audit-x-prod-backups-euw1",
        "prefix": "staging-seed/postgres/audit_x_prod/",
        "database": "audit_x_prod",
        "kmsKeyArn": mock_kms_key_arn("audit-x-prod-staging-seed"),
    }


def test_staging_reads_prods_export_and_never_holds_the_masking_key(plans: dict[str, Plan]) -> None:
    staging = plans["staging"]
    reference = staging.named("audit-x-staging-seed-reader-source")
    assert reference.type == "pulumi:pulumi:StackReference" and reference.inputs["name"] == PROD_EXPORT
    policy = json.loads(staging.named("audit-x-staging-seed-reader-policy").inputs["policy"])
    assert [s["Resource"] for s in policy["Statement"]] == [
        "arn:aws:s3:::audit-x-prod-backups-euw1",
        "arn:aws:s3:::audit-x-prod-backups-euw1/staging-seed/postgres/audit_x_prod/*",
        mock_kms_key_arn("audit-x-prod-staging-seed"),
    ]
    variables = env(container(staging, "backup"))
    assert (variables["SEED_SOURCE_BUCKET"], variables["SEED_SOURCE_DATABASE"]) == (
        "audit-x-prod-backups-euw1",
        "audit_x_prod",
    )
    assert variables["SEED_READER_PROFILE"] == "seed-reader" and "SEED_KEY_FILE" not in variables
    everything = [value for r in staging.resources for value in iter_strings(r.plain_inputs)]
    assert MASKING_KEY_VALUE not in everything and "staging-seed-masking-key" not in " ".join(everything)
    assert staging.outputs["stagingSeed"] is None


def test_before_prod_exports_its_seeds_staging_may_read_nothing_and_says_so() -> None:
    """The first rollout: the pipeline deploys staging first, while prod has no `stagingSeed` yet."""
    staging = run_program("staging", stack_outputs={PROD_EXPORT: {"environment": "prod"}})
    assert staging.named("audit-x-staging-seed-reader-policy").plain_inputs["policy"] == NOTHING_YET_POLICY
    variables = env(container(staging, "backup"))
    assert (variables["SEED_SOURCE_BUCKET"], variables["SEED_SOURCE_DATABASE"]) == ("", "")
    assert any("has not exported `stagingSeed` yet" in warning for warning in staging.warnings)


# --- built alone -------------------------------------------------------------------------------

RULES = {"users": {"id": "keep", "email": "email", "created_at": "shift_days:3"}}
SOURCE_STACK = "acme/audit-x/prod"
SOURCE_EXPORT = {
    "bucket": "acme-prod-backups",
    "bucketArn": "arn:aws:s3:::acme-prod-backups",
    "prefix": "staging-seed/postgres/audit_x_prod/",
    "database": "audit_x_prod",
    "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/prod-seed-key",
}
SOURCE = "audit-x-test-staging-seed"
READER = "audit-x-test-seed-reader"


def build_source() -> Plan:
    def declare() -> None:
        ctx = component_context()
        source = StagingSeedSource(
            SOURCE,
            StagingSeedSettings(rules=RULES),
            ctx=ctx,
            secrets=secrets(ctx),
            bucket=s3_bucket(ctx, "acme-test-backups"),
            database="audit_x_test",
            kms_deletion_window_days=9,
        )
        pulumi.export("stagingSeed", source.export())
        setup = source.runner_setup("999")
        pulumi.export("env", setup.env)
        pulumi.export("writerSeedKeyArn", setup.writer_seed_key_arn)
        # What the runner's container would get: the files, as the engine receives them.
        docker.Container("runner-stand-in", image="runner:1", uploads=[f.args() for f in setup.files])

    return run_component(declare)


def build_reader(exported: dict[str, str] | None) -> Plan:
    def declare() -> None:
        ctx = component_context()
        reader = StagingSeedReader(
            READER, StagingSeedSettings(source_stack=SOURCE_STACK), ctx=ctx, secrets=secrets(ctx)
        )
        setup = reader.runner_setup("999")
        pulumi.export("env", setup.env)
        pulumi.export("profile", setup.profile)
        pulumi.export("files", len(setup.files))
        pulumi.export("keyId", reader.identity.access_key.id)

    outputs = {"stagingSeed": exported} if exported else {}
    return run_component(declare, stack_outputs={SOURCE_STACK: outputs})


def test_seed_source_alone_declares_a_key_of_its_own_and_a_masking_key_among_the_secrets() -> None:
    plan = build_source()
    assert children(plan, SOURCE) == [(tokens.KMS_ALIAS, f"{SOURCE}-alias"), (tokens.KMS_KEY, SOURCE)]
    key = declared(plan, tokens.KMS_KEY, SOURCE)
    assert {k: key.inputs[k] for k in ("deletionWindowInDays", "enableKeyRotation", "tags")} == {
        "deletionWindowInDays": 9,
        "enableKeyRotation": True,
        "tags": {
            "Project": "audit-x",
            "Environment": "test",
            "ManagedBy": "pulumi",
            "Name": SOURCE,
            "Purpose": "staging-seed",
        },
    }
    assert declared(plan, tokens.KMS_ALIAS, f"{SOURCE}-alias").inputs["name"] == f"alias/{SOURCE}"
    masking = declared(plan, tokens.RANDOM_PASSWORD, "audit-x-test-staging-seed-masking-key")
    assert (masking.parent, masking.inputs["length"]) == ("audit-x-test-secrets", 64)
    assert declared(plan, tokens.SECRET, "audit-x-test-secret-staging-seed-masking-key").inputs["name"] == (
        "audit-x/test/staging-seed-masking-key"
    )


def test_the_sources_export_tells_staging_the_bucket_prefix_database_and_seed_key() -> None:
    plan = build_source()
    assert plan.outputs["stagingSeed"] == {
        "bucket": "acme-test-backups",
        "bucketArn": "arn:aws:s3:::acme-test-backups",
        "prefix": "staging-seed/postgres/audit_x_test/",
        "database": "audit_x_test",
        "kmsKeyArn": mock_kms_key_arn(SOURCE),
    }


def test_the_sources_runner_gets_the_rules_and_the_masking_key_for_its_owner_alone() -> None:
    plan = build_source()
    assert plan.outputs["env"] == {
        "SEED_RULES_FILE": "/etc/audit-x/masking-rules.json",
        "SEED_KEY_FILE": "/run/secrets/staging-seed-masking-key",
        "SEED_KMS_KEY_ID": mock_kms_key_arn(SOURCE),
    }
    assert plan.outputs["writerSeedKeyArn"] == mock_kms_key_arn(SOURCE)
    runner = declared(plan, tokens.CONTAINER, "runner-stand-in")
    rules = upload(runner, "/etc/audit-x/masking-rules.json")
    assert (json.loads(rules["content"]), rules["permissions"]) == (RULES, "0444")
    assert upload(runner, "/run/secrets/staging-seed-masking-key")["content"] == "[secret]"
    assert upload(runner, "/run/secrets/staging-seed-masking-key", plain=True) == {
        "file": "/run/secrets/staging-seed-masking-key",
        "content": generated(component_context(), "staging-seed-masking-key"),
        "permissions": "0400",
        "owner": "999",
        "group": "999",
    }


def test_seed_reader_alone_references_the_source_and_may_read_only_its_seeds() -> None:
    plan = build_reader(SOURCE_EXPORT)
    assert children(plan, READER, of="audit-x:backup:StagingSeedReader") == [
        ("audit-x:platform:AccessKeyIdentity", READER),
        ("pulumi:pulumi:StackReference", f"{READER}-source"),
    ]
    assert declared(plan, "pulumi:pulumi:StackReference", f"{READER}-source").inputs["name"] == SOURCE_STACK
    policy = json.loads(declared(plan, tokens.IAM_USER_POLICY, f"{READER}-policy").inputs["policy"])
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        ("Allow", ["s3:ListBucket"], "arn:aws:s3:::acme-prod-backups"),
        ("Allow", ["s3:GetObject"], "arn:aws:s3:::acme-prod-backups/staging-seed/postgres/audit_x_prod/*"),
        ("Allow", ["kms:Decrypt"], "arn:aws:kms:eu-west-1:123456789012:key/prod-seed-key"),
    ]
    assert policy["Statement"][0]["Condition"] == {
        "StringLike": {"s3:prefix": ["staging-seed/postgres/audit_x_prod/*"]}
    }
    assert declared(plan, tokens.SECRET, "audit-x-test-secret-seed-reader-access-key").inputs["description"] == (
        f"AWS access key that reads the staging seeds of {SOURCE_STACK}"
    )
    assert plan.warnings == []


def test_the_readers_runner_gets_the_sources_bucket_and_a_profile_not_a_file() -> None:
    plan = build_reader(SOURCE_EXPORT)
    assert plan.outputs["env"] == {
        "SEED_SOURCE_BUCKET": "acme-prod-backups",
        "SEED_SOURCE_DATABASE": "audit_x_prod",
        "SEED_READER_PROFILE": "seed-reader",
    }
    assert plan.outputs["files"] == 0
    assert plan.plain_outputs["profile"] == (
        f"[seed-reader]\naws_access_key_id = {plan.plain_outputs['keyId']}\n"
        f"aws_secret_access_key = {fake_secret(f'{READER}-key')}\n"
    )


def test_before_the_source_exports_the_reader_may_read_nothing_and_says_so() -> None:
    plan = build_reader(None)
    policy = json.loads(declared(plan, tokens.IAM_USER_POLICY, f"{READER}-policy").inputs["policy"])
    assert policy["Statement"] == [
        {"Sid": "NoSeedsExportedYet", "Effect": "Deny", "Action": ["s3:GetObject"], "Resource": "*"}
    ]
    assert plan.outputs["env"]["SEED_SOURCE_BUCKET"] == ""
    assert plan.warnings == [
        f"{SOURCE_STACK} has not exported `stagingSeed` yet: staging loads no seed until it has "
        "(update that stack, then this one)"
    ]
