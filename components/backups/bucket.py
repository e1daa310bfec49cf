"""The environment's S3 bucket for backups, with grandfather-father-son retention.

The backup jobs write every run under `daily/`, and copy the first of an ISO week under
`weekly/` and the first of a month under `monthly/`. The lifecycle rules below expire each
prefix after its copies' span, which keeps 7 daily, 4 weekly and 12 monthly backups (counts from
config). Versioning guards against an overwrite or a delete; noncurrent versions are expired
after a grace period so the guard does not keep everything forever.

Only the current S3 resources are used (pulumi-aws 7 deprecates the `*V2` ones).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.lib.context import EnvironmentContext
from components.settings import BackupSettings

DAILY_PREFIX = "daily/"
WEEKLY_PREFIX = "weekly/"
MONTHLY_PREFIX = "monthly/"


def retention_days(settings: BackupSettings) -> dict[str, int]:
    """Days after which each prefix's objects expire.

    A copy is made every day, week or month; keeping N copies means expiring a copy once it is
    N periods old. Months are taken as 31 days so that short months never cut the count below N.
    """
    return {
        DAILY_PREFIX: settings.daily_copies,
        WEEKLY_PREFIX: settings.weekly_copies * 7,
        MONTHLY_PREFIX: settings.monthly_copies * 31,
    }


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


def lifecycle_rules(settings: BackupSettings) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    rules = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=f"expire-{prefix.rstrip('/')}",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
        )
        for prefix, days in retention_days(settings).items()
    ]
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

    def __init__(
        self,
        name: str,
        settings: BackupSettings,
        *,
        ctx: EnvironmentContext,
        kms_key: aws.kms.Key,
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
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=lifecycle_rules(settings),
            # Lifecycle rules on a versioned bucket are validated against its versioning state.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})
