"""The backup bucket: private, encrypted, versioned, TLS-only, Object Lock on, and only released copies expire."""

from __future__ import annotations

import json

from components.lib import tokens
from components.settings import load_settings
from harness.mock_engine import Plan, load_stack_config
from tests.helpers import container, env


def bucket_part(plan: Plan, stack: str, part: str) -> dict:
    return plan.named(f"audit-x-{stack}-backups-{part}").inputs


def test_bucket_is_named_from_config_and_tagged(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    bucket = next(r for r in plan.resources if r.type == tokens.BUCKET).inputs
    assert bucket["bucket"] == settings.backup.bucket_name
    assert bucket["forceDestroy"] is False
    assert bucket["tags"]["Environment"] == stack
    assert plan.outputs["backupBucket"] == settings.backup.bucket_name


def test_public_access_is_blocked(plan: Plan, stack: str) -> None:
    block = bucket_part(plan, stack, "public-access-block")
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[flag] is True
    assert bucket_part(plan, stack, "ownership")["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_versioning_is_enabled(plan: Plan, stack: str) -> None:
    assert bucket_part(plan, stack, "versioning")["versioningConfiguration"]["status"] == "Enabled"


def test_encryption_uses_the_environments_kms_key(plan: Plan, stack: str) -> None:
    rule = bucket_part(plan, stack, "encryption")["rules"][0]
    default = rule["applyServerSideEncryptionByDefault"]
    assert default["sseAlgorithm"] == "aws:kms"
    assert default["kmsMasterKeyId"] == plan.outputs["kmsKeyArn"]
    assert rule["bucketKeyEnabled"] is True


def test_policy_denies_every_request_without_tls(plan: Plan, stack: str) -> None:
    policy = json.loads(bucket_part(plan, stack, "policy")["policy"])
    arn = plan.outputs["backupBucketArn"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def rules_by_id(plan: Plan, stack: str) -> dict[str, dict]:
    return {rule["id"]: rule for rule in bucket_part(plan, stack, "lifecycle")["rules"]}


def test_lifecycle_expires_only_what_the_runner_released(plan: Plan, stack: str) -> None:
    rules = rules_by_id(plan, stack)
    for tier in ("daily", "weekly", "monthly"):
        rule = rules.pop(f"expire-released-{tier}")
        assert rule["filter"] == {"and": {"prefix": f"{tier}/", "tags": {"audit-x-retention": "released"}}}
        assert rule["expiration"] == {"days": 1}
        assert rule["status"] == "Enabled"
    # Where the stack makes staging's seeds (prod), they expire by age: they are not backups.
    seed = load_settings(load_stack_config(stack)).staging_seed
    if seed is not None and seed.rules is not None:
        rule = rules.pop("expire-staging-seeds")
        assert (rule["filter"], rule["expiration"]) == ({"prefix": "staging-seed/"}, {"days": seed.keep_days})
    # Nothing else expires a current version: no rule can hide the newest copies by age.
    assert sorted(rules) == ["abort-incomplete-multipart-uploads", "expire-noncurrent-versions"]
    assert all("days" not in (rule.get("expiration") or {}) for rule in rules.values())


def test_object_lock_is_enabled_without_replacing_the_bucket_or_a_default_retention(plan: Plan, stack: str) -> None:
    lock = plan.named(f"audit-x-{stack}-backups-object-lock")
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    # No default retention: each copy is locked by the runner for its tier, and a prefix whose
    # tool must delete (pgBackRest's) stays outside the lock.
    assert "rule" not in lock.inputs
    assert plan.named(f"audit-x-{stack}-backups-versioning").urn in lock.dependencies
    bucket = next(r for r in plan.resources if r.type == tokens.BUCKET)
    assert "objectLockEnabled" not in bucket.inputs  # ForceNew on the bucket: it would replace it


def test_lock_mode_and_copies_reach_the_runner(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    assert settings.backup.object_lock_mode == {"prod": "COMPLIANCE", "staging": "GOVERNANCE"}[stack]
    variables = env(container(plan, "backup"))
    assert variables["BACKUP_LOCK_MODE"] == settings.backup.object_lock_mode
    assert tuple(variables[f"BACKUP_{tier}_COPIES"] for tier in ("DAILY", "WEEKLY", "MONTHLY")) == ("7", "4", "12")


def test_noncurrent_versions_expire_and_incomplete_uploads_are_aborted(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    rules = rules_by_id(plan, stack)
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["noncurrentVersionExpiration"] == {"noncurrentDays": settings.backup.noncurrent_version_days}
    assert noncurrent["expiration"] == {"expiredObjectDeleteMarker": True}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
