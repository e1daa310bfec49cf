"""The backup bucket: private, encrypted, versioned, TLS-only, and 7/4/12 retention by prefix."""

from __future__ import annotations

import json

from components.settings import load_settings
from tools.mock_engine import Plan, load_stack_config, run_program


def bucket_part(plan: Plan, stack: str, part: str) -> dict:
    return plan.named(f"audit-x-{stack}-backups-{part}").inputs


def test_bucket_is_named_from_config_and_tagged(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    bucket = next(r for r in plan.resources if r.type == "aws:s3/bucket:Bucket").inputs
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


def test_lifecycle_keeps_7_daily_4_weekly_12_monthly(plan: Plan, stack: str) -> None:
    rules = rules_by_id(plan, stack)
    assert rules["expire-daily"]["filter"] == {"prefix": "daily/"}
    assert rules["expire-daily"]["expiration"] == {"days": 7}
    assert rules["expire-weekly"]["filter"] == {"prefix": "weekly/"}
    assert rules["expire-weekly"]["expiration"] == {"days": 28}
    assert rules["expire-monthly"]["filter"] == {"prefix": "monthly/"}
    assert rules["expire-monthly"]["expiration"] == {"days": 372}
    for rule in rules.values():
        assert rule["status"] == "Enabled"


def test_lifecycle_lengths_come_from_config() -> None:
    config = load_stack_config("staging")
    backup = json.loads(config["audit-x:backup"]) | {"dailyCopies": 14, "weeklyCopies": 8, "monthlyCopies": 24}
    plan = run_program("staging", overrides={"audit-x:backup": json.dumps(backup)})
    rules = rules_by_id(plan, "staging")
    assert rules["expire-daily"]["expiration"] == {"days": 14}
    assert rules["expire-weekly"]["expiration"] == {"days": 56}
    assert rules["expire-monthly"]["expiration"] == {"days": 744}


def test_noncurrent_versions_expire_and_incomplete_uploads_are_aborted(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    rules = rules_by_id(plan, stack)
    noncurrent = rules["expire-noncurrent-versions"]
    assert noncurrent["noncurrentVersionExpiration"] == {"noncurrentDays": settings.backup.noncurrent_version_days}
    assert noncurrent["expiration"] == {"expiredObjectDeleteMarker": True}
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}
