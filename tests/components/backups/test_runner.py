"""The backup runner as the program declares it: image, container, identities, migration gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi

from components.backups.runner import RUNNER_DIR
from components.lib import tokens
from components.lib.build import image_tag_for, source_digest
from components.lib.durations import go_duration
from components.lib.tokens import label
from components.settings import load_settings
from harness.mock_engine import REPO_ROOT, Plan, load_stack_config, run_program, try_program
from tests.helpers import container, env, labels, network_names, uploaded


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


def test_writer_can_add_keep_and_release_backups_but_never_delete_or_shorten_them(plan: Plan, stack: str) -> None:
    document = policy(plan, stack, "writer")
    assert actions(document) == {
        "s3:ListBucket",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:GetObject",
        "s3:GetObjectRetention",
        "s3:PutObjectRetention",
        "s3:PutObjectTagging",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }
    bucket_arn = plan.outputs["backupBucketArn"]
    tiers = [f"{bucket_arn}/daily/*", f"{bucket_arn}/weekly/*", f"{bucket_arn}/monthly/*"]
    seeds = [s for s in document["Statement"] if s["Sid"] in ("AddStagingSeeds", "EncryptStagingSeeds")]
    for statement in (s for s in document["Statement"] if s not in seeds):
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


def test_reader_can_only_read(plan: Plan, stack: str) -> None:
    assert actions(policy(plan, stack, "reader")) == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}


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
