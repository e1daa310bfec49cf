"""The backup runner on the Docker host, its image, and its two AWS identities.

The runner (runner/) dumps PostgreSQL and InfluxDB to the environment's bucket on a schedule,
runs a weekly restore drill, and writes every outcome to InfluxDB. Its container is healthy only
while the last successful backup is younger than `backup.maxAgeHours`.

The Docker host is not on AWS, so the runner authenticates with an IAM access key, kept in
Secrets Manager and handed to the container as a shared-credentials file (mode 0400). Only the
`writer` identity is on the host: it may add copies under daily/, weekly/ and monthly/, read
them (server-side copies, the weekly drill, a restore on this host) and extend their Object
Lock within a cap per tier; it may not delete, write over a copy (If-None-Match), tag (release)
one, shorten a lock, or touch the bucket's configuration. The
`reader` identity (read only) is not on the host: its key stays in Secrets Manager, for a
restore on another machine (docs/backup-restore.md). The trade-off: the host can read every
copy, which holds nothing the live database on the same host does not, and in exchange a
stolen host key can neither destroy a copy nor read anything beyond the backups.

Where config says so (prod), a fresh backup runs as a one-shot job before every migration, and
the migration only starts once it succeeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.backups.bucket import TIER_PREFIXES
from components.backups.staging_seed import SeedRunnerSetup, seed_writer_statements
from components.data.influxdb import InfluxDbEndpoint
from components.data.postgres import DATA_DIR, SOCKET_DIR, Archiving, DatabaseEndpoint
from components.lib.build import REPO_ROOT, built_image
from components.lib.containers import (
    SECRETS_DIR,
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
)
from components.lib.context import EnvironmentContext
from components.lib.tokens import LABEL_PREFIX
from components.platform.identity import AccessKeyIdentity
from components.platform.network import Networks
from components.platform.secrets import Secrets
from components.settings import BackupSettings

BUILD_CONTEXT = "runner"
RUNNER_DIR = REPO_ROOT / BUILD_CONTEXT
STATE_DIR = "/var/lib/audit-x-backup"
CREDENTIALS_FILE = f"{SECRETS_DIR}/aws-credentials"
PG_PASSWORD_FILE = f"{SECRETS_DIR}/postgres-password"
INFLUX_TOKEN_FILE = f"{SECRETS_DIR}/influxdb-token"
# The image runs as `postgres` (uid 999 in the official image it is built from).
RUNNER_UID = "999"
HEALTH_COMMAND = "python -m runner healthcheck"


@dataclass(frozen=True)
class PitrRunner:
    """What the runner needs to take pgBackRest's backups: the server's archiving setup, its
    volumes, and the schedules (`pitr.fullSchedule`, `pitr.diffSchedule`, `pitr.drillSchedule`)."""

    archiving: Archiving
    server_image: docker.Image
    server_image_name: str
    data_volume: pulumi.Input[str]
    socket_volume: pulumi.Input[str]
    full_schedule: str
    diff_schedule: str
    drill_schedule: str


def retention_caps(settings: BackupSettings) -> dict[str, int]:
    """The most days of lock the writer may set on a copy of each tier: the runner's own longest
    (`copies` periods from now, runner/retention.py: months of 31 days) and one day of slack for
    S3's rounding. A stolen key cannot lock junk for years at the account's cost."""
    periods = {"daily": 1, "weekly": 7, "monthly": 31}
    copies = {"daily": settings.daily_copies, "weekly": settings.weekly_copies, "monthly": settings.monthly_copies}
    return {tier: copies[tier] * periods[tier] + 1 for tier in periods}


def writer_policy(bucket_arn: str, key_arn: str, caps: dict[str, int], seed_key_arn: str | None = None) -> str:
    """Add, read and keep copies; nothing that deletes, overwrites, hides or shortens one, and
    no bucket configuration: a compromised host cannot destroy a backup before its time. Where
    prod makes staging's seeds (`seed_key_arn`), add them under staging-seed/ too
    (components/backups/staging_seed.py)."""
    tiers = [f"{bucket_arn}/{prefix}*" for prefix in TIER_PREFIXES]
    keep = [
        # Extending a lock, within the tier's cap: S3 refuses to shorten a COMPLIANCE lock, and a
        # GOVERNANCE one without s3:BypassGovernanceRetention, which it does not have.
        {
            "Sid": f"Keep{tier.capitalize()}Copies",
            "Effect": "Allow",
            "Action": ["s3:PutObjectRetention"],
            "Resource": f"{bucket_arn}/{tier}/*",
            "Condition": {"NumericLessThanEquals": {"s3:object-lock-remaining-retention-days": str(cap)}},
        }
        for tier, cap in caps.items()
    ]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListBackups",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in TIER_PREFIXES]}},
                },
                {
                    "Sid": "AddBackups",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                    "Resource": tiers,
                },
                # A copy is written once: an object (PutObject, CompleteMultipartUpload) is created
                # only with `If-None-Match: *`, so an existing key is never written over. The parts
                # of a multipart upload carry no such header (s3:ObjectCreationOperation is false).
                {
                    "Sid": "NeverOverwriteBackups",
                    "Effect": "Deny",
                    "Action": ["s3:PutObject"],
                    "Resource": tiers,
                    "Condition": {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
                },
                # Server-side copies to weekly/ and monthly/, the weekly drill, lock dates.
                {
                    "Sid": "ReadBackups",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectRetention"],
                    "Resource": tiers,
                },
                *keep,
                {
                    "Sid": "EncryptWithTheEnvironmentsKey",
                    "Effect": "Allow",
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": key_arn,
                },
                *(seed_writer_statements(bucket_arn, seed_key_arn) if seed_key_arn else []),
            ],
        },
        indent=2,
    )


def reader_policy(bucket_arn: str, key_arn: str) -> str:
    """Read backups for verify and restore, every version too (what a delete marker or an
    overwrite hides: pgBackRest's `--repo-target-time` reads the repository as it was); write
    nothing."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ListBackups",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
                    "Resource": bucket_arn,
                },
                {
                    "Sid": "ReadBackups",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                    "Resource": f"{bucket_arn}/*",
                },
                {"Sid": "Decrypt", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": key_arn},
            ],
        },
        indent=2,
    )


@dataclass(frozen=True)
class RunnerSetup:
    """What every container of the runner gets: its environment, volumes and files."""

    env: dict[str, pulumi.Input[str]]
    volumes: dict[str, pulumi.Input[str]]
    files: list[SecretFile | ConfigFile]


def runner_setup(
    settings: BackupSettings,
    *,
    ctx: EnvironmentContext,
    region: str,
    bucket: aws.s3.Bucket,
    credentials: pulumi.Output[str],
    database: DatabaseEndpoint,
    influxdb: InfluxDbEndpoint,
    state_volume: pulumi.Input[str],
    pitr: PitrRunner | None,
    seed: SeedRunnerSetup | None,
) -> RunnerSetup:
    """The runner's wiring: the bucket and the writer's credentials, PostgreSQL and InfluxDB, the
    schedules, and where PITR or staging's seed are configured, what they add."""
    env: dict[str, pulumi.Input[str]] = {
        "BACKUP_ENVIRONMENT": ctx.environment,
        "BACKUP_BUCKET": bucket.bucket,
        "AWS_REGION": region,
        "AWS_SHARED_CREDENTIALS_FILE": CREDENTIALS_FILE,
        "BACKUP_WRITER_PROFILE": "writer",
        "BACKUP_LOCK_MODE": settings.object_lock_mode,
        "BACKUP_DAILY_COPIES": str(settings.daily_copies),
        "BACKUP_WEEKLY_COPIES": str(settings.weekly_copies),
        "BACKUP_MONTHLY_COPIES": str(settings.monthly_copies),
        "BACKUP_PART_SIZE_MB": str(settings.part_size_mb),
        "BACKUP_STATE_DIR": STATE_DIR,
        "BACKUP_MAX_AGE_HOURS": str(settings.max_age_hours),
        "BACKUP_SCHEDULE_POSTGRES": settings.postgres_schedule,
        "BACKUP_SCHEDULE_INFLUXDB": settings.influxdb_schedule,
        "BACKUP_SCHEDULE_VERIFY": settings.verify_schedule,
        "PGHOST": database.host,
        "PGPORT": str(database.port),
        "PGUSER": database.login,
        "PGDATABASE": database.database,
        "PGPASSWORD_FILE": PG_PASSWORD_FILE,
        "INFLUX_URL": influxdb.url,
        "INFLUX_ORG": influxdb.org,
        "INFLUX_METRICS_BUCKET": influxdb.bucket,
        "INFLUX_TOKEN_FILE": INFLUX_TOKEN_FILE,
    }
    volumes: dict[str, pulumi.Input[str]] = {STATE_DIR: state_volume}
    pitr_files: list[SecretFile | ConfigFile] = []
    if pitr is not None:
        # pgBackRest backs up from the server's own data directory and socket, with the very
        # configuration the server archives with.
        env |= {
            "BACKUP_PITR_FULL_SCHEDULE": pitr.full_schedule,
            "BACKUP_PITR_DIFF_SCHEDULE": pitr.diff_schedule,
            "BACKUP_PITR_DRILL_SCHEDULE": pitr.drill_schedule,
            "PITR_PG_SOCKET": SOCKET_DIR,
        }
        volumes |= {DATA_DIR: pitr.data_volume, SOCKET_DIR: pitr.socket_volume}
        pitr_files = pitr.archiving.files(owner=RUNNER_UID)
    seed_files: list[SecretFile | ConfigFile] = []
    if seed is not None:
        env |= seed.env
        seed_files = seed.files
        if seed.profile is not None:
            credentials = pulumi.Output.concat(credentials, "\n", seed.profile)
    files: list[SecretFile | ConfigFile] = [
        *pitr_files,
        *seed_files,
        SecretFile(CREDENTIALS_FILE, credentials, owner=RUNNER_UID),
        SecretFile(PG_PASSWORD_FILE, database.password, owner=RUNNER_UID),
        SecretFile(INFLUX_TOKEN_FILE, influxdb.token, owner=RUNNER_UID),
    ]
    return RunnerSetup(env, volumes, files)


class BackupRunner(pulumi.ComponentResource):
    image: docker.Image
    writer: AccessKeyIdentity
    reader: AccessKeyIdentity
    volume: docker.Volume
    container: docker.Container
    pre_migration: docker.Container | None

    def __init__(
        self,
        name: str,
        settings: BackupSettings,
        *,
        ctx: EnvironmentContext,
        region: str,
        bucket: aws.s3.Bucket,
        kms_key: aws.kms.Key,
        secrets: Secrets,
        postgres_image: str,
        influxdb_image: str,
        database: DatabaseEndpoint,
        influxdb: InfluxDbEndpoint,
        networks: Networks,
        depends_on: list[pulumi.Input[pulumi.Resource]],
        pitr: PitrRunner | None = None,
        seed: SeedRunnerSetup | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:backup:BackupRunner", name, None, opts)
        self._name = name
        self._ctx = ctx
        self._settings = settings
        self._networks = networks
        self.writer, self.reader = self._identities(bucket, kms_key, secrets, seed)

        # With PITR, FROM the server's own image as built on the host, pgBackRest included:
        # pgBackRest must be the same version on both ends of a backup.
        build_args = {
            "POSTGRES_IMAGE": pitr.server_image_name if pitr else postgres_image,
            "INFLUXDB_IMAGE": influxdb_image,
        }
        # Built FROM the server's own image: pg_dump and pg_restore match its major version. The
        # tag names the sources and the images built from: a new postgres image is a new tag, so
        # the runner is replaced and never keeps an older pg_dump.
        self.image = built_image(name, BUILD_CONTEXT, build_args, self, after=pitr.server_image if pitr else None)
        self.volume = named_volume(ctx, f"{name}-state", "backup", "state", self)
        # The writer only: the reader's key is not on the host (see the module's docstring). In
        # staging, the seed reader too: it reads prod's seeds, nothing else (staging_seed.py).
        self._setup = runner_setup(
            settings,
            ctx=ctx,
            region=region,
            bucket=bucket,
            credentials=self.writer.profile("writer"),
            database=database,
            influxdb=influxdb,
            state_volume=self.volume.name,
            pitr=pitr,
            seed=seed,
        )
        self._after_data = pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, self.writer, self.reader])
        self.container = long_running_container(
            ctx,
            name,
            self._spec(
                "scheduler",
                ["serve"],
                # Healthy only while every backup is fresh; on a first start the runner takes one
                # straight away, so the start period covers a whole backup.
                HealthCheck(
                    HEALTH_COMMAND,
                    # 3 x (20 s + 10 s): within the unhealthy-container alert's budget
                    # (UNHEALTHY_AFTER_SECONDS in components/observability/alerting.py).
                    interval="20s",
                    timeout="10s",
                    retries=3,
                    start_period=f"{settings.startup_timeout_seconds}s",
                    start_interval="10s",
                ),
            ),
            self._after_data,
            # A new runner (new image, rotated credentials) is healthy before the old one goes.
            rolling=True,
        )
        self.pre_migration = None
        self.register_outputs({"container": self.container.name, "writer": self.writer.user.name})

    def _identities(
        self, bucket: aws.s3.Bucket, kms_key: aws.kms.Key, secrets: Secrets, seed: SeedRunnerSetup | None
    ) -> tuple[AccessKeyIdentity, AccessKeyIdentity]:
        """The writer (on the host) and the reader (off it), each with its own policy."""
        seed_key_arn = seed.writer_seed_key_arn if seed else None

        def identity(role: str, policy: pulumi.Output[str]) -> AccessKeyIdentity:
            return AccessKeyIdentity(
                f"{self._name}-{role}",
                ctx=self._ctx,
                policy=policy,
                secrets=secrets,
                stored_as=f"backup-{role}-access-key",
                purpose=f"AWS access key of the backup runner's {role} identity",
                # The token they were created with: their URNs stay.
                type_token="audit-x:backup:BackupIdentity",
                opts=pulumi.ResourceOptions(parent=self),
            )

        # Each policy carries only the outputs it names: the reader's is not touched by the seed key.
        writer = identity(
            "writer",
            pulumi.Output.all(bucket.arn, kms_key.arn, seed_key_arn).apply(
                lambda a: writer_policy(a[0], a[1], retention_caps(self._settings), a[2])
            ),
        )
        reader = identity(
            "reader", pulumi.Output.all(bucket.arn, kms_key.arn).apply(lambda a: reader_policy(a[0], a[1]))
        )
        return writer, reader

    def _spec(
        self,
        role: str,
        command: list[str],
        health: HealthCheck | None,
        labels: dict[str, pulumi.Input[str]] | None = None,
    ) -> ContainerSpec:
        """A container of the runner's image in `role`: the scheduler, or a one-shot job."""
        settings = self._settings
        return ContainerSpec(
            service="backup",
            role=role,
            image=self.image.image_name,
            memory_mb=settings.memory_limit_mb,
            # data: PostgreSQL and InfluxDB; app: outbound, to S3.
            networks=[on_network(self._networks.data), on_network(self._networks.app)],
            command=command,
            env=self._setup.env,
            files=self._setup.files,
            volumes=self._setup.volumes,
            healthcheck=health,
            extra_labels=labels or {},
            wait_timeout_seconds=settings.startup_timeout_seconds + 60,
            # A pre-migration backup takes as long as a scheduled one at most.
            run_timeout_seconds=settings.startup_timeout_seconds,
            # A backup in progress is allowed to finish its current part and abort cleanly.
            stop_grace_seconds=60,
        )

    def pre_migration_backup(self, for_migration: pulumi.Output[str]) -> docker.Container | None:
        """A fresh PostgreSQL backup for the migration whose revision is `for_migration`, where
        config asks for one (`backup.beforeMigrations`): it runs again whenever that migration does."""
        if not self._settings.before_migrations:
            return None
        self.pre_migration = one_shot_container(
            self._ctx,
            f"{self._name}-pre-migrate",
            self._spec(
                "pre-migrate",
                ["postgres", "--reason", "pre-migration"],
                None,
                {f"{LABEL_PREFIX}.for-migration": for_migration},
            ),
            self._after_data,
        )
        return self.pre_migration
