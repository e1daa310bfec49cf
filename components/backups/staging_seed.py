"""Staging's data on AWS: prod makes masked seeds, staging may read them and nothing else of prod's.

    prod    StagingSeedSource   the seed's own KMS key, the masking key (a generated secret of
                                prod's, never given to staging), the rules file, and the export
                                `stagingSeed` (bucket, prefix, KMS key) that staging reads
    staging StagingSeedReader   a StackReference to prod's export, and an identity that may list
                                and read `staging-seed/postgres/<prod's db>/` in prod's bucket and
                                decrypt with the seed's key: no other prefix, no other key

Seeds are encrypted with their own key, not the environment's: prod's key decrypts every backup
and secret of prod's, the seed's key only seeds. Prod's backup runner writes them as its writer
identity, which may put under `staging-seed/` and nothing else new (components/backups/runner.py);
the bucket expires them after `stagingSeed.keepDays` (components/backups/bucket.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.lib.containers import SECRETS_DIR, ConfigFile, SecretFile
from components.lib.context import EnvironmentContext
from components.platform.identity import AccessKeyIdentity
from components.platform.secrets import GeneratedSecret, Secrets
from components.settings import StagingSeedSettings
from runner import staging_seed
from runner.layout import SEED_TIER

OUTPUT = "stagingSeed"
RULES_FILE = "/etc/audit-x/masking-rules.json"
MASKING_KEY_FILE = f"{SECRETS_DIR}/staging-seed-masking-key"
READER_PROFILE = "seed-reader"
MASKING_KEY = GeneratedSecret(
    "staging-seed-masking-key",
    64,
    "Keyed-hash key of staging's seed masking (prod only: with it, a fake leads back to its value)",
)


def seed_writer_statements(bucket_arn: str, seed_key_arn: str) -> list[dict[str, object]]:
    """What prod's writer adds for seeds: put under staging-seed/ only, with the seed's key."""
    return [
        {
            "Sid": "AddStagingSeeds",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": f"{bucket_arn}/{SEED_TIER}/*",
        },
        # A multipart upload under SSE-KMS decrypts its own data key to complete.
        {
            "Sid": "EncryptStagingSeeds",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": seed_key_arn,
        },
    ]


def seed_reader_policy(bucket_arn: str, prefix: str, seed_key_arn: str) -> str:
    """Staging's reader: list and read prod's seeds, decrypt them; nothing else of prod's."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListSeeds",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                },
                {
                    "Sid": "ReadSeeds",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": f"{bucket_arn}/{prefix}*",
                },
                {"Sid": "DecryptSeeds", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": seed_key_arn},
            ],
        },
        indent=2,
    )


# An identity policy must grant or deny something: until there are seeds, it denies their reading.
NOTHING_YET_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "NoSeedsExportedYet", "Effect": "Deny", "Action": ["s3:GetObject"], "Resource": "*"}],
    },
    indent=2,
)


def _exported_or_warn(source_stack: str) -> Callable[[Any], dict[str, str] | None]:
    def check(exported: Any) -> dict[str, str] | None:
        if not exported:
            pulumi.log.warn(
                f"{source_stack} has not exported `{OUTPUT}` yet: staging loads no seed until it has "
                "(update that stack, then this one)"
            )
            return None
        return exported

    return check


@dataclass
class SeedRunnerSetup:
    """What the backup runner's container gets for seeds: environment, files, and (prod) the
    seed key its writer encrypts with, or (staging) the reader's credentials profile."""

    env: dict[str, pulumi.Input[str]]
    files: list[SecretFile | ConfigFile] = field(default_factory=list)
    writer_seed_key_arn: pulumi.Output[str] | None = None
    profile: pulumi.Output[str] | None = None


class StagingSeedSource(pulumi.ComponentResource):
    """Prod: the seed's KMS key, the masking key, the rules file, the `stagingSeed` export."""

    kms_key: aws.kms.Key
    kms_alias: aws.kms.Alias

    def __init__(
        self,
        name: str,
        settings: StagingSeedSettings,
        *,
        ctx: EnvironmentContext,
        secrets: Secrets,
        bucket: aws.s3.Bucket,
        database: str,
        kms_deletion_window_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:backup:StagingSeedSource", name, None, opts)
        assert settings.rules is not None, "a seed source has masking rules (StagingSeedSettings)"
        self._rules = settings.rules
        self._database = database
        self._bucket = bucket
        self.kms_key = aws.kms.Key(
            name,
            description=f"Encrypts the staging seeds of audit-x {ctx.environment} (masked data, nothing else)",
            enable_key_rotation=True,
            deletion_window_in_days=kms_deletion_window_days,
            tags=ctx.tags(Name=name, Purpose="staging-seed"),
            opts=ctx.stateful(self),
        )
        self.kms_alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{name}",
            target_key_id=self.kms_key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._masking_key = secrets.generate(MASKING_KEY)
        self.register_outputs({"kmsKeyArn": self.kms_key.arn})

    def export(self) -> dict[str, pulumi.Input[str]]:
        """The `stagingSeed` stack output: where staging finds the seeds, and their key."""
        return {
            "bucket": self._bucket.bucket,
            "bucketArn": self._bucket.arn,
            "prefix": staging_seed.seed_prefix(self._database),
            "database": self._database,
            "kmsKeyArn": self.kms_key.arn,
        }

    def runner_setup(self, owner: str) -> SeedRunnerSetup:
        """`owner`: the uid the runner runs as, who alone may read the masking key's file."""
        return SeedRunnerSetup(
            env={"SEED_RULES_FILE": RULES_FILE, "SEED_KEY_FILE": MASKING_KEY_FILE, "SEED_KMS_KEY_ID": self.kms_key.arn},
            files=[
                ConfigFile(RULES_FILE, json.dumps(self._rules, indent=2, sort_keys=True)),
                SecretFile(MASKING_KEY_FILE, self._masking_key, owner=owner),
            ],
            writer_seed_key_arn=self.kms_key.arn,
        )


class StagingSeedReader(pulumi.ComponentResource):
    """Staging: prod's `stagingSeed` export, and an identity that may read those seeds alone."""

    reference: pulumi.StackReference
    identity: AccessKeyIdentity

    def __init__(
        self,
        name: str,
        settings: StagingSeedSettings,
        *,
        ctx: EnvironmentContext,
        secrets: Secrets,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:backup:StagingSeedReader", name, None, opts)
        assert settings.source_stack is not None, "a seed reader has a source stack (StagingSeedSettings)"
        child = pulumi.ResourceOptions(parent=self)
        self.reference = pulumi.StackReference(f"{name}-source", stack_name=settings.source_stack, opts=child)
        # None until prod has exported it (the first rollout deploys staging before prod): the
        # reader then may read nothing, and the runner has no seed source, until the next update.
        source = self.reference.get_output(OUTPUT).apply(_exported_or_warn(settings.source_stack))
        self._source = source
        self.identity = AccessKeyIdentity(
            name,
            ctx=ctx,
            policy=source.apply(
                lambda s: seed_reader_policy(s["bucketArn"], s["prefix"], s["kmsKeyArn"]) if s else NOTHING_YET_POLICY
            ),
            secrets=secrets,
            stored_as="seed-reader-access-key",
            purpose=f"AWS access key that reads the staging seeds of {settings.source_stack}",
            opts=child,
        )
        self.register_outputs({"sourceStack": settings.source_stack})

    def runner_setup(self, owner: str) -> SeedRunnerSetup:
        """The reader has no file of its own (`owner` unused): a profile in the runner's credentials."""
        return SeedRunnerSetup(
            env={
                "SEED_SOURCE_BUCKET": self._source.apply(lambda s: str(s["bucket"]) if s else ""),
                "SEED_SOURCE_DATABASE": self._source.apply(lambda s: str(s["database"]) if s else ""),
                "SEED_READER_PROFILE": READER_PROFILE,
            },
            profile=self.identity.profile(READER_PROFILE),
        )
