"""The environment's S3 bucket for backups: grandfather-father-son copies nobody can destroy early.

The backup jobs write every run under `daily/`, and copy the first of an ISO week under
`weekly/` and the first of a month under `monthly/`, each object under S3 Object Lock until its
tier's span has passed (COMPLIANCE in prod: not even the account's root user can delete or
shorten it; GOVERNANCE in staging). The runner keeps 7 daily, 4 weekly and 12 monthly copies by
count (runner/retention.py): it extends the newest copies' locks while newer ones are missing,
and `python -m runner release`, run off the host, tags a copy `audit-x-retention=released` once
it is past its count and its lock has run out (the writer on the host may not tag).
Only then does a lifecycle rule below expire it: no age-based rule can hide the newest copies.

Versioning keeps an overwritten or deleted object as a noncurrent version, still under its
lock; noncurrent versions are expired after `noncurrentVersionDays`, never before their lock.
The bucket's default retention locks what nobody locks on the way in, pgBackRest's repository
above all, for `pitr.retentionDays` + 7 days: pgBackRest's expire deletes with plain DELETEs
(no version id), which on a versioned bucket only add a delete marker, so its objects stay
readable by version, by the reader, for the whole window PITR promises, whoever deletes.

Only the current S3 resources are used (pulumi-aws 7 deprecates the `*V2` ones).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.lib.context import EnvironmentContext
from components.settings import BackupSettings
from runner.layout import SEED_TIER, TIERS
from runner.storage import RELEASE_TAG

# The prefixes the runner writes (runner/layout.py), one per tier.
TIER_PREFIXES = tuple(f"{tier}/" for tier in TIERS)


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that does not use TLS, whoever makes it."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        indent=2,
    )


def lifecycle_rules(
    settings: BackupSettings, seed_keep_days: int | None = None
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    tag, released = RELEASE_TAG
    rules = [
        # Only what the runner released (past its count, its lock run out) expires; the day is
        # the lifecycle's smallest step. The version it leaves stays for noncurrentVersionDays.
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=f"expire-released-{prefix.rstrip('/')}",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                and_=aws.s3.BucketLifecycleConfigurationRuleFilterAndArgs(prefix=prefix, tags={tag: released})
            ),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=1),
        )
        for prefix in TIER_PREFIXES
    ]
    if seed_keep_days is not None:
        # Staging's seeds are not backups: no lock, and replaced weekly; the newest few are kept.
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-staging-seeds",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=f"{SEED_TIER}/"),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=seed_keep_days),
            )
        )
    rules += [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=settings.noncurrent_version_days
            ),
            # Once every version of an object is gone, its lone delete marker is clutter.
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=settings.abort_incomplete_upload_days
            ),
        ),
    ]
    return rules


class BackupBucket(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    ownership: aws.s3.BucketOwnershipControls
    public_access_block: aws.s3.BucketPublicAccessBlock
    versioning: aws.s3.BucketVersioning
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    policy: aws.s3.BucketPolicy
    lifecycle: aws.s3.BucketLifecycleConfiguration
    object_lock: aws.s3.BucketObjectLockConfiguration

    def __init__(
        self,
        name: str,
        settings: BackupSettings,
        *,
        ctx: EnvironmentContext,
        kms_key: aws.kms.Key,
        default_lock_days: int,
        seed_keep_days: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:backup:BackupBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.bucket = aws.s3.Bucket(
            name,
            bucket=settings.bucket_name,
            # Never empty a bucket of backups as a side effect of deleting the resource.
            force_destroy=False,
            tags=ctx.tags(Name=settings.bucket_name, Purpose="backups"),
            opts=ctx.stateful(self),
        )
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms",
                        kms_master_key_id=kms_key.arn,
                    ),
                    # One data key per bucket instead of per object: far fewer KMS calls.
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(tls_only_policy),
            # S3 rejects a policy while the public access block is being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
        # Enables Object Lock on the bucket, existing or new, without replacing it (the bucket's
        # own `object_lock_enabled` would force a new bucket). Once on, it cannot be undone. The
        # runner locks each copy for its tier, explicitly, which takes the place of the default;
        # the default holds everything else (pgBackRest's repository, staging's seeds).
        self.object_lock = aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock",
            bucket=self.bucket.id,
            object_lock_enabled="Enabled",
            rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                    mode=settings.object_lock_mode, days=default_lock_days
                )
            ),
            # Object Lock needs versioning on first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=lifecycle_rules(settings, seed_keep_days),
            # Lifecycle rules on a versioned bucket are validated against its versioning state.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})
