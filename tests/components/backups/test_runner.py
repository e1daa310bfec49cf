"""The backup runner as the program declares it: image, container, identities, migration gate.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
its wiring from stand-ins, with and without PITR, a seed or a pre-migration backup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.backups.runner import RUNNER_DIR, BackupRunner, PitrRunner
from components.backups.staging_seed import SeedRunnerSetup
from components.data.postgres import Archiving
from components.lib import tokens
from components.lib.build import image_tag_for, source_digest
from components.lib.durations import go_duration
from components.lib.tokens import label
from components.settings import BackupSettings, load_settings
from harness.mock_engine import (
    REPO_ROOT,
    DeclaredResource,
    Plan,
    fake_secret,
    load_stack_config,
    mock_kms_key_arn,
    run_component,
    run_program,
    try_program,
)
from tests.helpers import (
    children,
    component_context,
    container,
    database_endpoint,
    declared,
    env,
    influxdb_endpoint,
    labels,
    network_names,
    networks,
    s3_bucket,
    secrets,
    upload,
    uploaded,
    volumes,
)


def policy(plan: Plan, stack: str, role: str) -> dict:
    return json.loads(plan.named(f"audit-x-{stack}-backup-{role}-policy").inputs["policy"])


def actions(document: dict) -> set[str]:
    return {action for statement in document["Statement"] for action in statement["Action"]}


def test_image_is_built_from_the_servers_own_postgres_image(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    (image,) = [i for i in plan.of_type(tokens.BUILT_IMAGE) if i.name == f"audit-x-{stack}-backup-image"]
    build = image.inputs["build"]
    # FROM the database's own image as built on the host: pg_dump and pgBackRest are the server's.
    server = next(i for i in plan.of_type(tokens.BUILT_IMAGE) if i.name == f"audit-x-{stack}-postgres-server-image")
    assert build["args"] == {"POSTGRES_IMAGE": server.inputs["imageName"], "INFLUXDB_IMAGE": settings.influxdb.image}
    assert server.inputs["build"]["args"]["POSTGRES_IMAGE"] == settings.postgres.image
    assert server.urn in image.dependencies  # built after the image it is built FROM
    assert (build["context"], build["dockerfile"]) == ("runner", "runner/Dockerfile")  # same path everywhere
    assert (REPO_ROOT / build["dockerfile"]).resolve() == RUNNER_DIR / "Dockerfile"
    assert image.inputs["skipPush"] is True
    build_args = {"POSTGRES_IMAGE": server.inputs["imageName"], "INFLUXDB_IMAGE": "influxdb:2.7.11-alpine"}
    assert image.inputs["imageName"] == f"audit-x-{stack}-backup:{image_tag_for(build_args, RUNNER_DIR)}"
    assert container(plan, "backup").inputs["image"] == image.inputs["imageName"]


def test_dockerfile_defaults_match_the_default_images() -> None:
    dockerfile = (RUNNER_DIR / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    settings = load_settings(load_stack_config("prod"))
    assert defaults == {"POSTGRES_IMAGE": settings.postgres.image, "INFLUXDB_IMAGE": settings.influxdb.image}
    assert re.search(r"^FROM \$\{POSTGRES_IMAGE\}$", dockerfile, re.MULTILINE)
    assert "COPY --from=influx /usr/local/bin/influx" in dockerfile
    assert re.search(r"^USER postgres$", dockerfile, re.MULTILINE), "the runner does not run as root"


def test_source_digest_changes_with_the_runner_code(tmp_path: Path) -> None:
    (tmp_path / "cli.py").write_text("print(1)\n")
    before = source_digest(tmp_path)
    (tmp_path / "cli.py").write_text("print(2)\n")
    assert source_digest(tmp_path) != before


def test_runner_container_is_scheduled_health_checked_and_wired(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    runner = container(plan, "backup")
    assert runner.inputs["command"] == ["serve"]
    assert runner.inputs["healthcheck"]["tests"] == ["CMD-SHELL", "python -m runner healthcheck"]
    # In Go's duration format, as the provider reads it back: no diff on a refresh.
    assert runner.inputs["healthcheck"]["startPeriod"] == go_duration(settings.backup.startup_timeout_seconds)
    assert runner.inputs["restart"] == "unless-stopped"
    variables = env(runner)
    assert variables["BACKUP_BUCKET"] == settings.backup.bucket_name
    assert variables["BACKUP_MAX_AGE_HOURS"] == str(settings.backup.max_age_hours)
    assert variables["BACKUP_SCHEDULE_POSTGRES"] == settings.backup.postgres_schedule
    assert variables["BACKUP_SCHEDULE_VERIFY"] == settings.backup.verify_schedule
    assert variables["PGDATABASE"] == f"audit_x_{stack}"
    assert variables["PGPASSWORD_FILE"] == "/run/secrets/postgres-password"
    assert variables["INFLUX_URL"] == "http://influxdb:8086"
    assert variables["BACKUP_WRITER_PROFILE"] == "writer"
    assert "BACKUP_READER_PROFILE" not in variables  # the reader's key is not on the host
    assert not any(key.startswith("AWS_SECRET") or key == "AWS_ACCESS_KEY_ID" for key in variables)
    assert set(network_names(runner)) == {f"audit-x-{stack}-data", f"audit-x-{stack}-app"}
    mounts = {v["containerPath"]: v["volumeName"] for v in runner.inputs["volumes"]}
    assert mounts == {
        "/var/lib/audit-x-backup": f"audit-x-{stack}-backup-state",
        # pgBackRest backs up from the server's own data directory, through its socket.
        "/var/lib/postgresql/data": f"audit-x-{stack}-postgres-data",
        "/var/run/postgresql": f"audit-x-{stack}-postgres-socket",
    }
    assert (variables["BACKUP_PITR_FULL_SCHEDULE"], variables["BACKUP_PITR_DIFF_SCHEDULE"]) == (
        settings.pitr.full_schedule,
        settings.pitr.diff_schedule,
    )
    uploads = {u["file"]: u for u in runner.inputs["uploads"]}
    assert uploads["/run/secrets/pgbackrest/secrets.conf"]["content"] == "[secret]"
    assert uploads["/etc/pgbackrest/pgbackrest.conf"]["content"] == uploaded(
        container(plan, "postgres"), "/etc/pgbackrest/pgbackrest.conf"
    )


def test_only_the_writers_credentials_reach_the_runner_as_a_secret_file(plan: Plan, stack: str) -> None:
    """And in staging the seed reader's, which reads prod's seeds alone (test_staging_seed.py beside this)."""
    runner = container(plan, "backup")
    masked = {u["file"]: u for u in runner.inputs["uploads"]}["/run/secrets/aws-credentials"]
    assert masked["content"] == "[secret]"
    assert (masked["permissions"], masked["owner"]) == ("0400", "999")
    content = {u["file"]: u["content"] for u in runner.plain_inputs["uploads"]}["/run/secrets/aws-credentials"]
    assert content.startswith("[writer]\naws_access_key_id = AKIA")
    profiles = re.findall(r"^\[([a-z-]+)\]$", content, flags=re.MULTILINE)
    assert profiles == (["writer", "seed-reader"] if stack == "staging" else ["writer"])
    assert content.count("aws_access_key_id") == len(profiles) and "[reader]" not in content
    assert env(runner)["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/aws-credentials"


def test_writer_can_add_and_keep_backups_but_never_delete_overwrite_hide_or_shorten_them(
    plan: Plan, stack: str
) -> None:
    document = policy(plan, stack, "writer")
    # No s3:PutObjectTagging: the release tag would hand the newest copies to the lifecycle.
    assert actions(document) == {
        "s3:ListBucket",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:GetObject",
        "s3:GetObjectRetention",
        "s3:PutObjectRetention",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }
    bucket_arn = plan.outputs["backupBucketArn"]
    tiers = [f"{bucket_arn}/daily/*", f"{bucket_arn}/weekly/*", f"{bucket_arn}/monthly/*"]
    # A lock is extended within the tier's cap only: the runner's longest (7 days, 4 weeks, 12
    # months of 31 days) and a day: no junk locked for years at the account's cost.
    keep = {s["Sid"]: (s["Resource"], s["Condition"]) for s in document["Statement"] if s["Sid"].startswith("Keep")}
    assert keep == {
        f"Keep{tier.capitalize()}Copies": (
            f"{bucket_arn}/{tier}/*",
            {"NumericLessThanEquals": {"s3:object-lock-remaining-retention-days": str(cap)}},
        )
        for tier, cap in (("daily", 8), ("weekly", 29), ("monthly", 373))
    }
    # Nothing written over: an object is created only with If-None-Match.
    (never,) = [s for s in document["Statement"] if s["Effect"] == "Deny"]
    assert (never["Action"], never["Resource"], never["Condition"]) == (
        ["s3:PutObject"],
        tiers,
        {"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
    )
    seeds = [s for s in document["Statement"] if s["Sid"] in ("AddStagingSeeds", "EncryptStagingSeeds")]
    for statement in (s for s in document["Statement"] if s not in seeds and s["Sid"] not in keep):
        if statement["Action"][0].startswith("s3:") and statement["Action"] != ["s3:ListBucket"]:
            assert statement["Resource"] == tiers
    # Where this stack makes staging's seeds (prod), it may add them under staging-seed/ alone.
    makes_seeds = bool(plan.outputs["stagingSeed"])
    assert [s["Resource"] for s in seeds] == (
        [f"{bucket_arn}/staging-seed/*", plan.outputs["stagingSeed"]["kmsKeyArn"]] if makes_seeds else []
    )
    listing = next(s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["daily/*", "weekly/*", "monthly/*"]}}
    # What it lacks is the point: no delete, no governance bypass, no bucket configuration.
    assert not actions(document) & {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"}
    kms = next(s for s in document["Statement"] if s["Sid"] == "EncryptWithTheEnvironmentsKey")
    assert kms["Resource"] == plan.outputs["kmsKeyArn"]


def test_reader_can_only_read_every_version_too(plan: Plan, stack: str) -> None:
    # Versions: what a delete marker or an overwrite by a key on the host hides stays readable.
    assert actions(policy(plan, stack, "reader")) == {
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "kms:Decrypt",
    }


def test_identities_are_per_environment(plans: dict[str, Plan]) -> None:
    users = {
        stack: {r.inputs["name"] for r in plan.of_type(tokens.IAM_USER) if "-backup-" in r.inputs["name"]}
        for stack, plan in plans.items()
    }
    assert users["staging"] == {"audit-x-staging-backup-writer", "audit-x-staging-backup-reader"}
    assert users["prod"] == {"audit-x-prod-backup-writer", "audit-x-prod-backup-reader"}


def test_migration_waits_for_a_fresh_backup_made_for_it(plan: Plan, stack: str) -> None:
    backup = container(plan, "backup-pre-migrate")
    assert backup.inputs["command"] == ["postgres", "--reason", "pre-migration"]
    migrate = container(plan, "migrate")
    # Made for this migration: its label is the migration's revision (the suffix of its name).
    assert labels(backup)[label("for-migration")] == migrate.inputs["name"].rsplit("-", 1)[1]
    assert backup.urn in migrate.dependencies
    # Through depends_on only: no input of the migration carries the backup job's outputs.
    assert not any(backup.urn in deps for deps in migrate.property_dependencies.values())


def test_failed_pre_migration_backup_stops_the_migration() -> None:
    plan, error = try_program("prod", exit_codes={"audit-x-prod-backup-pre-migrate": 1})
    assert isinstance(error, pulumi.RunError)
    assert "audit-x-prod-backup-pre-migrate exited with code 1" in str(error)
    declared = {c.name for c in plan.of_type(tokens.CONTAINER)}
    assert "audit-x-prod-backup-pre-migrate" in declared
    assert "audit-x-prod-migrate" not in declared
    assert not any("web" in name for name in declared)


def test_pre_migration_backup_follows_config() -> None:
    backup = json.loads(load_stack_config("staging")["audit-x:backup"]) | {"beforeMigrations": False}
    plan = run_program("staging", overrides={"audit-x:backup": json.dumps(backup)})
    names = {c.name for c in plan.of_type(tokens.CONTAINER)}
    assert "audit-x-staging-backup-pre-migrate" not in names
    assert not any("backup" in dep for dep in container(plan, "migrate").dependencies)


# --- built alone -------------------------------------------------------------------------------

NAME = "audit-x-test-backup"
RUNNER = "audit-x:backup:BackupRunner"
IDENTITY = "audit-x:backup:BackupIdentity"
SERVER_IMAGE_NAME = "audit-x-test-postgres-server:0123456789abcdef"
PITR_CONFIG = "[global]\nrepo1-type=s3\n"
PITR_SECRETS = "[global]\nrepo1-cipher-pass=pitr-cipher-value\n"
SEED_PROFILE = "[seed-reader]\naws_access_key_id = AKIASEED\naws_secret_access_key = seed-reader-value\n"
RUNNER_USER = {"permissions": "0400", "owner": "999", "group": "999"}


def backup_settings(*, before_migrations: bool = False) -> BackupSettings:
    return BackupSettings(
        bucket_name="acme-test-backups",
        daily_copies=5,
        weekly_copies=3,
        monthly_copies=6,
        object_lock_mode="GOVERNANCE",
        postgres_schedule="03:15",
        influxdb_schedule="03:45",
        verify_schedule="sat 06:00",
        max_age_hours=30,
        before_migrations=before_migrations,
        part_size_mb=6,
        memory_limit_mb=320,
        startup_timeout_seconds=900,
    )


def build_runner(*, with_pitr: bool = False, with_seed: bool = False, before_migrations: bool = False) -> Plan:
    def declare() -> None:
        ctx = component_context()
        store = secrets(ctx)
        # What the runner waits for (the database's logins, InfluxDB): one stand-in.
        data_ready = docker.Container("data-ready-stand-in", name="data-ready", image="postgres:17.6-bookworm")
        pitr = (
            PitrRunner(
                archiving=Archiving(
                    pgbackrest_version="2.56.0-1.pgdg12+1",
                    archive_timeout_seconds=60,
                    config=PITR_CONFIG,
                    secrets=pulumi.Output.secret(PITR_SECRETS),
                ),
                server_image=docker.Image(
                    "server-image-stand-in",
                    image_name=SERVER_IMAGE_NAME,
                    build=docker.DockerBuildArgs(context="components/data/postgres_image"),
                    skip_push=True,
                ),
                server_image_name=SERVER_IMAGE_NAME,
                data_volume="audit-x-test-postgres-data",
                socket_volume="audit-x-test-postgres-socket",
                full_schedule="sun 01:30",
                diff_schedule="01:30",
                drill_schedule="sat 05:30",
            )
            if with_pitr
            else None
        )
        seed = (
            SeedRunnerSetup(env={"SEED_READER_PROFILE": "seed-reader"}, profile=pulumi.Output.secret(SEED_PROFILE))
            if with_seed
            else None
        )
        runner = BackupRunner(
            NAME,
            backup_settings(before_migrations=before_migrations),
            ctx=ctx,
            region="eu-central-1",
            bucket=s3_bucket(ctx, "acme-test-backups"),
            kms_key=store.kms_key,
            secrets=store,
            postgres_image="postgres:17.6-bookworm",
            influxdb_image="influxdb:2.7.11-alpine",
            database=database_endpoint(),
            influxdb=influxdb_endpoint(),
            networks=networks(ctx),
            depends_on=[data_ready],
            pitr=pitr,
            seed=seed,
        )
        pulumi.export(
            "preMigration", runner.pre_migration_backup(pulumi.Output.from_input("migration-rev-1")) is not None
        )
        pulumi.export("writerKeyId", runner.writer.access_key.id)

    return run_component(declare)


def scheduler(plan: Plan) -> DeclaredResource:
    return declared(plan, tokens.CONTAINER, NAME)


def writer_profile(plan: Plan) -> str:
    return (
        f"[writer]\naws_access_key_id = {plan.plain_outputs['writerKeyId']}\n"
        f"aws_secret_access_key = {fake_secret(f'{NAME}-writer-key')}\n"
    )


def test_runner_alone_declares_its_image_identities_state_volume_and_scheduler() -> None:
    plan = build_runner()
    assert children(plan, NAME, of=RUNNER) == [
        (IDENTITY, f"{NAME}-reader"),
        (IDENTITY, f"{NAME}-writer"),
        (tokens.CONTAINER, NAME),
        (tokens.BUILT_IMAGE, f"{NAME}-image"),
        (tokens.VOLUME, f"{NAME}-state"),
    ]
    image = declared(plan, tokens.BUILT_IMAGE, f"{NAME}-image")
    assert image.inputs["build"]["args"] == {
        "POSTGRES_IMAGE": "postgres:17.6-bookworm",
        "INFLUXDB_IMAGE": "influxdb:2.7.11-alpine",
    }
    assert (image.inputs["build"]["context"], image.inputs["build"]["dockerfile"]) == ("runner", "runner/Dockerfile")
    assert re.fullmatch(rf"{NAME}:[0-9a-f]{{16}}", image.inputs["imageName"])
    runner = scheduler(plan)
    assert runner.inputs["image"] == image.inputs["imageName"]
    assert re.fullmatch(rf"{NAME}-[0-9a-f]{{8}}", runner.inputs["name"])  # rolling: new before old
    assert runner.inputs["command"] == ["serve"]
    assert network_names(runner) == ["audit-x-test-data", "audit-x-test-app"]
    assert volumes(runner) == {"/var/lib/audit-x-backup": "audit-x-test-backup-state"}
    assert runner.inputs["healthcheck"] == {
        "tests": ["CMD-SHELL", "python -m runner healthcheck"],
        "interval": "20s",
        "timeout": "10s",
        "retries": 3,
        "startPeriod": "15m0s",
        "startInterval": "10s",
    }
    assert (runner.inputs["memory"], runner.inputs["stopTimeout"], runner.inputs["waitTimeout"]) == (320, 60, 960)
    assert (labels(runner)[label("service")], labels(runner)[label("role")]) == ("backup", "scheduler")


def test_the_runner_is_wired_to_the_bucket_database_and_metrics_store_it_is_given() -> None:
    assert env(scheduler(build_runner())) == {
        "BACKUP_ENVIRONMENT": "test",
        "BACKUP_BUCKET": "acme-test-backups",
        "AWS_REGION": "eu-central-1",
        "AWS_SHARED_CREDENTIALS_FILE": "/run/secrets/aws-credentials",
        "BACKUP_WRITER_PROFILE": "writer",
        "BACKUP_LOCK_MODE": "GOVERNANCE",
        "BACKUP_DAILY_COPIES": "5",
        "BACKUP_WEEKLY_COPIES": "3",
        "BACKUP_MONTHLY_COPIES": "6",
        "BACKUP_PART_SIZE_MB": "6",
        "BACKUP_STATE_DIR": "/var/lib/audit-x-backup",
        "BACKUP_MAX_AGE_HOURS": "30",
        "BACKUP_SCHEDULE_POSTGRES": "03:15",
        "BACKUP_SCHEDULE_INFLUXDB": "03:45",
        "BACKUP_SCHEDULE_VERIFY": "sat 06:00",
        "PGHOST": "db.test",
        "PGPORT": "6543",
        "PGUSER": "audit_x_b",
        "PGDATABASE": "audit_x_test",
        "PGPASSWORD_FILE": "/run/secrets/postgres-password",
        "INFLUX_URL": "http://metrics.test:8086",
        "INFLUX_ORG": "test-org",
        "INFLUX_METRICS_BUCKET": "test-metrics",
        "INFLUX_TOKEN_FILE": "/run/secrets/influxdb-token",
    }


def test_its_secrets_are_masked_files_of_its_user_and_only_the_writers_key_is_among_them() -> None:
    plan = build_runner()
    runner = scheduler(plan)
    for path, value in (
        ("/run/secrets/aws-credentials", writer_profile(plan)),
        ("/run/secrets/postgres-password", "database-password-value"),
        ("/run/secrets/influxdb-token", "influxdb-token-value"),
    ):
        assert upload(runner, path)["content"] == "[secret]"
        assert upload(runner, path, plain=True) == {"file": path, "content": value, **RUNNER_USER}
    assert len(runner.inputs["uploads"]) == 3
    assert fake_secret(f"{NAME}-reader-key") not in str(runner.plain_inputs)


def test_it_starts_after_what_it_is_given_to_wait_for_and_its_identities() -> None:
    plan = build_runner()
    runner = scheduler(plan)
    waited = {r.name for r in plan.resources if r.urn in runner.dependencies}
    assert {"data-ready-stand-in", f"{NAME}-writer", f"{NAME}-writer-key", f"{NAME}-reader-key"} <= waited


def test_the_writer_may_add_and_keep_copies_and_the_reader_only_read() -> None:
    plan = build_runner()
    writer = json.loads(declared(plan, tokens.IAM_USER_POLICY, f"{NAME}-writer-policy").inputs["policy"])
    tiers = [f"arn:aws:s3:::acme-test-backups/{tier}/*" for tier in ("daily", "weekly", "monthly")]
    assert {s["Sid"]: s["Resource"] for s in writer["Statement"]} == {
        "ListBackups": "arn:aws:s3:::acme-test-backups",
        "AddBackups": tiers,
        "NeverOverwriteBackups": tiers,
        "ReadBackups": tiers,
        **{
            f"Keep{tier.capitalize()}Copies": f"arn:aws:s3:::acme-test-backups/{tier}/*"
            for tier in ("daily", "weekly", "monthly")
        },
        "EncryptWithTheEnvironmentsKey": mock_kms_key_arn("audit-x-test-kms"),
    }
    assert not [a for a in actions(writer) if "Delete" in a or "Bypass" in a]
    reader = json.loads(declared(plan, tokens.IAM_USER_POLICY, f"{NAME}-reader-policy").inputs["policy"])
    assert [(s["Action"], s["Resource"]) for s in reader["Statement"]] == [
        (["s3:ListBucket", "s3:ListBucketVersions"], "arn:aws:s3:::acme-test-backups"),
        (["s3:GetObject", "s3:GetObjectVersion"], "arn:aws:s3:::acme-test-backups/*"),
        (["kms:Decrypt"], mock_kms_key_arn("audit-x-test-kms")),
    ]
    stored = {r.inputs["name"] for r in plan.of_type(tokens.SECRET)}
    assert {"audit-x/test/backup-writer-access-key", "audit-x/test/backup-reader-access-key"} <= stored


def test_without_pitr_the_runner_has_no_part_of_it_and_with_pitr_it_is_built_from_the_servers_image() -> None:
    without = scheduler(build_runner())
    assert not [k for k in env(without) if k.startswith(("BACKUP_PITR_", "PITR_", "SEED_"))]
    assert set(volumes(without)) == {"/var/lib/audit-x-backup"}

    plan = build_runner(with_pitr=True)
    image = declared(plan, tokens.BUILT_IMAGE, f"{NAME}-image")
    assert image.inputs["build"]["args"]["POSTGRES_IMAGE"] == SERVER_IMAGE_NAME
    assert declared(plan, tokens.BUILT_IMAGE, "server-image-stand-in").urn in image.dependencies
    runner = scheduler(plan)
    assert {k: v for k, v in env(runner).items() if "PITR" in k} == {
        "BACKUP_PITR_FULL_SCHEDULE": "sun 01:30",
        "BACKUP_PITR_DIFF_SCHEDULE": "01:30",
        "BACKUP_PITR_DRILL_SCHEDULE": "sat 05:30",
        "PITR_PG_SOCKET": "/var/run/postgresql",
    }
    assert volumes(runner) == {
        "/var/lib/audit-x-backup": "audit-x-test-backup-state",
        "/var/lib/postgresql/data": "audit-x-test-postgres-data",
        "/var/run/postgresql": "audit-x-test-postgres-socket",
    }
    assert upload(runner, "/etc/pgbackrest/pgbackrest.conf")["content"] == PITR_CONFIG
    assert upload(runner, "/run/secrets/pgbackrest/secrets.conf")["content"] == "[secret]"
    assert upload(runner, "/run/secrets/pgbackrest/secrets.conf", plain=True) == {
        "file": "/run/secrets/pgbackrest/secrets.conf",
        "content": PITR_SECRETS,
        **RUNNER_USER,
    }


def test_a_seed_readers_profile_joins_the_writers_in_the_one_credentials_file() -> None:
    plan = build_runner(with_seed=True)
    runner = scheduler(plan)
    assert env(runner)["SEED_READER_PROFILE"] == "seed-reader"
    assert upload(runner, "/run/secrets/aws-credentials", plain=True)["content"] == (
        writer_profile(plan) + "\n" + SEED_PROFILE
    )


def test_a_pre_migration_backup_exists_only_where_asked_and_is_made_for_that_migration() -> None:
    without = build_runner()
    assert without.outputs["preMigration"] is False
    assert [r.name for r in without.of_type(tokens.CONTAINER) if r.parent == NAME] == [NAME]

    plan = build_runner(before_migrations=True)
    assert plan.outputs["preMigration"] is True
    job = declared(plan, tokens.CONTAINER, f"{NAME}-pre-migrate")
    assert job.parent == NAME
    assert (job.inputs["command"], job.inputs["attach"]) == (["postgres", "--reason", "pre-migration"], True)
    assert (labels(job)[label("role")], labels(job)[label("for-migration")]) == ("pre-migrate", "migration-rev-1")
    assert env(job) == env(scheduler(plan))
    waited = {r.name for r in plan.resources if r.urn in job.dependencies}
    assert {"data-ready-stand-in", f"{NAME}-writer-key", f"{NAME}-reader-key"} <= waited
