"""Staging's seed as the program declares it (components/backups/staging_seed.py): what prod makes
and exports, what staging reads through its StackReference, and staging's first rollout."""

from __future__ import annotations

import json

from components.backups.staging_seed import NOTHING_YET_POLICY
from components.lib import tokens
from harness import audit_dataset
from harness.mock_engine import Plan, fake_secret, iter_strings, mock_kms_key_arn, run_program
from runner import seed
from tests.helpers import container, env, uploaded

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
