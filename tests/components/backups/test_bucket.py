"""The backup bucket: private, encrypted, versioned, TLS-only, Object Lock on, and only released copies expire.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
each of the bucket's settings, their order, the seed rule, protection."""

from __future__ import annotations

import json

from components.backups.bucket import BackupBucket
from components.lib import tokens
from components.settings import BackupSettings, load_settings
from harness.mock_engine import Plan, load_stack_config, mock_kms_key_arn, run_component
from tests.helpers import children, component_context, container, declared, env, kms_key


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


def test_object_lock_is_enabled_without_replacing_the_bucket_with_the_pitr_windows_default(
    plan: Plan, stack: str
) -> None:
    settings = load_settings(load_stack_config(stack))
    lock = plan.named(f"audit-x-{stack}-backups-object-lock")
    assert lock.inputs["objectLockEnabled"] == "Enabled"
    # What nobody locks on the way in (pgBackRest's repository) is locked for the PITR window and
    # the week before it: prod 14 + 7, staging 7 + 7, in the stack's lock mode.
    assert lock.inputs["rule"] == {
        "defaultRetention": {
            "mode": settings.backup.object_lock_mode,
            "days": {"prod": 21, "staging": 14}[stack],
        }
    }
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


# --- built alone -------------------------------------------------------------------------------

BACKUP = BackupSettings(
    bucket_name="acme-test-backups",
    noncurrent_version_days=45,
    abort_incomplete_upload_days=2,
    object_lock_mode="COMPLIANCE",
)
NAME = "audit-x-test-backups"
S3 = "aws:s3/"


def build_bucket(seed_keep_days: int | None = None, *, protect: bool = False) -> Plan:
    def declare() -> None:
        ctx = component_context(protect_stateful=protect)
        BackupBucket(NAME, BACKUP, ctx=ctx, kms_key=kms_key(ctx), default_lock_days=30, seed_keep_days=seed_keep_days)

    return run_component(declare)


def test_bucket_alone_declares_the_bucket_and_each_of_its_settings_beside_it() -> None:
    plan = build_bucket()
    assert children(plan, NAME) == [
        (tokens.BUCKET, NAME),
        (tokens.BUCKET_LIFECYCLE, f"{NAME}-lifecycle"),
        (f"{S3}bucketObjectLockConfiguration:BucketObjectLockConfiguration", f"{NAME}-object-lock"),
        (f"{S3}bucketOwnershipControls:BucketOwnershipControls", f"{NAME}-ownership"),
        (f"{S3}bucketPolicy:BucketPolicy", f"{NAME}-policy"),
        (f"{S3}bucketPublicAccessBlock:BucketPublicAccessBlock", f"{NAME}-public-access-block"),
        (
            f"{S3}bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{NAME}-encryption",
        ),
        (f"{S3}bucketVersioning:BucketVersioning", f"{NAME}-versioning"),
    ]
    bucket = declared(plan, tokens.BUCKET, NAME)
    assert {k: bucket.inputs[k] for k in ("bucket", "forceDestroy", "tags")} == {
        "bucket": "acme-test-backups",
        "forceDestroy": False,
        "tags": {
            "Project": "audit-x",
            "Environment": "test",
            "ManagedBy": "pulumi",
            "Name": "acme-test-backups",
            "Purpose": "backups",
        },
    }
    parts = {r.name.removeprefix(f"{NAME}-"): r.inputs for r in plan.resources if r.parent == NAME}
    assert {part for part, inputs in parts.items() if inputs.get("bucket") == "acme-test-backups"} == set(parts)
    assert parts["ownership"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    assert {k: v for k, v in parts["public-access-block"].items() if k != "bucket"} == {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    assert parts["versioning"]["versioningConfiguration"] == {"status": "Enabled"}
    assert parts["encryption"]["rules"] == [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": mock_kms_key_arn("audit-x-test-kms"),
            },
            "bucketKeyEnabled": True,
        }
    ]
    (statement,) = json.loads(parts["policy"]["policy"])["Statement"]
    assert (statement["Effect"], statement["Resource"], statement["Condition"]) == (
        "Deny",
        ["arn:aws:s3:::acme-test-backups", "arn:aws:s3:::acme-test-backups/*"],
        {"Bool": {"aws:SecureTransport": "false"}},
    )
    # Object Lock on, and the default retention it was given, in the lock mode of the settings.
    assert {k: v for k, v in parts["object-lock"].items() if k != "bucket"} == {
        "objectLockEnabled": "Enabled",
        "rule": {"defaultRetention": {"mode": "COMPLIANCE", "days": 30}},
    }


def test_policy_waits_for_the_public_access_block_and_lock_and_lifecycle_for_versioning() -> None:
    plan = build_bucket()
    urn = {r.name.removeprefix(f"{NAME}-"): r.urn for r in plan.resources if r.parent == NAME}
    dependencies = {r.name.removeprefix(f"{NAME}-"): set(r.dependencies) for r in plan.resources if r.parent == NAME}
    assert urn["public-access-block"] in dependencies["policy"]
    assert urn["versioning"] in dependencies["object-lock"]
    assert urn["versioning"] in dependencies["lifecycle"]


def test_the_staging_seed_rule_is_there_only_when_seeds_are_kept() -> None:
    def rules(plan: Plan) -> dict[str, dict]:
        lifecycle = declared(plan, tokens.BUCKET_LIFECYCLE, f"{NAME}-lifecycle")
        return {rule.pop("id"): rule for rule in lifecycle.inputs["rules"]}

    without = rules(build_bucket())
    assert list(without) == [
        "expire-released-daily",
        "expire-released-weekly",
        "expire-released-monthly",
        "expire-noncurrent-versions",
        "abort-incomplete-multipart-uploads",
    ]
    assert without["expire-released-weekly"]["filter"] == {
        "and": {"prefix": "weekly/", "tags": {"audit-x-retention": "released"}}
    }
    assert without["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 45}
    assert without["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 2}

    with_seeds = rules(build_bucket(seed_keep_days=21))
    assert with_seeds["expire-staging-seeds"] == {
        "status": "Enabled",
        "filter": {"prefix": "staging-seed/"},
        "expiration": {"days": 21},
    }
    assert set(with_seeds) - set(without) == {"expire-staging-seeds"}


def test_a_protected_environment_protects_and_keeps_the_bucket_and_nothing_else_of_it() -> None:
    plan = build_bucket(protect=True)
    assert [(r.name, r.protect, r.retain_on_delete) for r in plan.resources if r.protect or r.retain_on_delete] == [
        (NAME, True, True)
    ]


def test_a_stack_that_keeps_the_default_lock_mode_can_still_release_its_copies() -> None:
    """GOVERNANCE unless a stack file says COMPLIANCE (prod's does): a throwaway stack's copies
    can be released by an administrator instead of staying locked for up to 373 days."""
    config = {k: v for k, v in load_stack_config("staging").items() if k != "audit-x:backup"}
    backup = json.loads(load_stack_config("staging")["audit-x:backup"])
    backup.pop("objectLockMode")
    assert load_settings(config | {"audit-x:backup": json.dumps(backup)}).backup.object_lock_mode == "GOVERNANCE"
    assert json.loads(load_stack_config("prod")["audit-x:backup"])["objectLockMode"] == "COMPLIANCE"
