"""The point-in-time-recovery repository: pgBackRest's own identity, its passphrase and its
configuration, for the database's server (archive-push) and the backup runner (backups).

The repository lives in the environment's backup bucket under `pgbackrest/`, under the bucket's
default Object Lock retention: every object pgBackRest writes is locked for `pitr.retentionDays`
+ 7 days (components/backups/bucket.py). pgBackRest's expire still runs: at the pinned version it
removes with plain DELETEs (storageS3Remove, and DeleteObjects naming keys without a version:
src/storage/s3/storage.c, release/2.56.0), which on a versioned bucket add a delete marker and
remove no version. So this identity may `s3:DeleteObject` under its prefix (hide), never
`s3:DeleteObjectVersion`, `s3:PutObjectRetention` or `s3:BypassGovernanceRetention` (destroy or
unlock): whoever holds its key can hide the newest backups, and the reader, off the host, still
lists and reads every version (`pgbackrest restore --repo-target-time`).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.data.postgres import PGDATA, SOCKET_DIR, SPOOL_DIR, Archiving
from components.lib.context import EnvironmentContext
from components.platform.identity import AccessKeyIdentity
from components.platform.secrets import Secrets
from components.settings import PitrSettings
from runner import pitr

PREFIX = f"{pitr.REPOSITORY_PREFIX}/"


def bucket_arn_of(bucket_name: str) -> str:
    return f"arn:aws:s3:::{bucket_name}"


def pgbackrest_policy(bucket_arn: str, key_arn: str) -> str:
    """Read, write and delete (a delete marker: every version is locked) under `pgbackrest/`,
    nothing anywhere else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListTheRepository",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{PREFIX}*", pitr.REPOSITORY_PREFIX]}},
                },
                {
                    "Sid": "KeepTheRepository",
                    "Effect": "Allow",
                    # Delete: pgBackRest's expire hides backups and WAL past the window; the locked
                    # versions stay until the lock and noncurrentVersionDays have both passed.
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": f"{bucket_arn}/{PREFIX}*",
                },
                {
                    "Sid": "EncryptWithTheEnvironmentsKey",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": key_arn,
                },
            ],
        },
        indent=2,
    )


class PitrRepository(pulumi.ComponentResource):
    identity: AccessKeyIdentity
    config: pulumi.Output[str]
    secrets_file: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: PitrSettings,
        *,
        ctx: EnvironmentContext,
        bucket_name: str,
        region: str,
        kms_key: aws.kms.Key,
        secrets: Secrets,
        superuser: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`superuser`: the database's bootstrap superuser (`postgres.user`), the role pgBackRest
        connects as."""
        super().__init__("audit-x:backup:PitrRepository", name, None, opts)
        self.settings = settings
        bucket_arn = bucket_arn_of(bucket_name)
        self.identity = AccessKeyIdentity(
            name,
            ctx=ctx,
            policy=kms_key.arn.apply(lambda key_arn: pgbackrest_policy(bucket_arn, key_arn)),
            secrets=secrets,
            stored_as="pgbackrest-access-key",
            purpose="AWS access key of pgBackRest's identity (the PITR repository)",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.config = kms_key.arn.apply(
            lambda key_arn: pitr.render_config(
                pitr.Settings(
                    repository=pitr.Repository(bucket=bucket_name, region=region, kms_key_id=key_arn),
                    retention_days=settings.retention_days,
                    queue_max_mb=settings.archive_queue_max_mb,
                    pg_path=PGDATA,
                    pg_socket_path=SOCKET_DIR,
                    pg_user=superuser,
                    spool_path=SPOOL_DIR,
                )
            )
        )
        self.secrets_file = pulumi.Output.all(
            self.identity.access_key.id, self.identity.access_key.secret, secrets.value("pgbackrest-cipher-pass")
        ).apply(
            lambda values: pitr.render_secrets(
                access_key_id=values[0], secret_access_key=values[1], cipher_pass=values[2]
            )
        )
        self.register_outputs({"user": self.identity.user.name})

    def archiving(self) -> Archiving:
        """What the database's server needs to archive its WAL here."""
        return Archiving(
            pgbackrest_version=self.settings.pgbackrest_version,
            archive_timeout_seconds=self.settings.archive_timeout_seconds,
            config=self.config,
            secrets=pulumi.Output.secret(self.secrets_file),
        )
