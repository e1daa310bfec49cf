"""Point-in-time recovery as the program declares it: PostgreSQL built with pgBackRest and
archiving to the backup bucket under `pgbackrest/`, with an identity of its own that may delete
only there, and a configuration whose secrets are only in a secret file."""

from __future__ import annotations

import json

from components.data.postgres import SERVER_IMAGE_CONTEXT, SPOOL_DIR
from components.lib import tokens
from components.lib.build import REPO_ROOT, image_tag_for
from components.settings import load_settings
from components.settings.secrets import NOT_ROTATABLE, ROTATABLE_SECRETS
from harness.mock_engine import Plan, load_stack_config
from runner import pitr
from tests.helpers import container, uploaded


def server_image(plan: Plan, stack: str) -> dict:
    (image,) = [i for i in plan.of_type(tokens.BUILT_IMAGE) if i.name == f"audit-x-{stack}-postgres-server-image"]
    return image.inputs


def test_the_server_runs_the_pinned_image_plus_pinned_pgbackrest(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    image = server_image(plan, stack)
    args = {"POSTGRES_IMAGE": settings.postgres.image, "PGBACKREST_VERSION": settings.pitr.pgbackrest_version}
    assert image["build"]["args"] == args
    assert image["build"]["context"] == SERVER_IMAGE_CONTEXT
    assert (
        image["imageName"] == f"audit-x-{stack}-postgres-server:{image_tag_for(args, REPO_ROOT / SERVER_IMAGE_CONTEXT)}"
    )
    assert container(plan, "postgres").inputs["image"] == image["imageName"]
    dockerfile = (REPO_ROOT / SERVER_IMAGE_CONTEXT / "Dockerfile").read_text()
    assert '"pgbackrest=${PGBACKREST_VERSION}"' in dockerfile and "apt-archive.postgresql.org" in dockerfile


def test_the_server_archives_every_segment_within_the_configured_timeout(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    command = container(plan, "postgres").inputs["command"]
    flags = dict(command[i + 1].split("=", 1) for i in range(len(command) - 1) if command[i] == "-c")
    assert flags["archive_mode"] == "on"
    assert flags["archive_command"] == (
        "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --config-include-path=/run/secrets/pgbackrest "
        "--stanza=audit-x archive-push %p"
    )
    assert flags["archive_timeout"] == str(settings.pitr.archive_timeout_seconds)
    assert settings.pitr.archive_timeout_seconds == {"prod": 60, "staging": 300}[stack]
    volumes = {v["containerPath"]: v["volumeName"] for v in container(plan, "postgres").inputs["volumes"]}
    # The data volume is the same one: changing to this image keeps the data.
    assert volumes["/var/lib/postgresql/data"] == f"audit-x-{stack}-postgres-data"
    assert volumes[SPOOL_DIR] == f"audit-x-{stack}-postgres-spool"


def test_pgbackrests_config_names_the_bucket_prefix_key_and_window_and_no_secret(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    server = container(plan, "postgres")
    config = uploaded(server, pitr.CONFIG_FILE)
    options = dict(line.split("=", 1) for line in config.splitlines() if "=" in line)
    assert options["repo1-s3-bucket"] == settings.backup.bucket_name
    assert options["repo1-path"] == "/pgbackrest"
    assert options["repo1-s3-kms-key-id"] == plan.outputs["kmsKeyArn"]
    assert options["repo1-cipher-type"] == "aes-256-cbc"
    assert options["repo1-retention-full-type"] == "time"
    assert options["repo1-retention-full"] == str(settings.pitr.retention_days)
    assert options["archive-push-queue-max"] == f"{settings.pitr.archive_queue_max_mb}MiB"
    assert not set(pitr.SECRET_OPTIONS) & set(options)
    secrets = {u["file"]: u for u in server.inputs["uploads"]}[pitr.SECRETS_FILE]
    assert secrets["content"] == "[secret]"
    assert (secrets["permissions"], secrets["owner"]) == ("0400", "999")
    plain = {u["file"]: u["content"] for u in server.plain_inputs["uploads"]}[pitr.SECRETS_FILE]
    assert [line.split("=", 1)[0] for line in plain.splitlines()[1:]] == list(pitr.SECRET_OPTIONS)


def test_pgbackrests_identity_may_delete_only_under_its_prefix(plan: Plan, stack: str) -> None:
    policy = next(p for p in plan.of_type(tokens.IAM_USER_POLICY) if p.name == f"audit-x-{stack}-pgbackrest-policy")
    document = json.loads(policy.plain_inputs["policy"])
    bucket = f"arn:aws:s3:::{load_settings(load_stack_config(stack)).backup.bucket_name}"
    objects = next(s for s in document["Statement"] if "s3:DeleteObject" in s["Action"])
    assert objects["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    assert objects["Resource"] == f"{bucket}/pgbackrest/*"
    listing = next(s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["pgbackrest/*", "pgbackrest"]}}


def test_the_repository_passphrase_is_generated_and_never_rotated(plan: Plan) -> None:
    assert "pgbackrest-cipher-pass" not in ROTATABLE_SECRETS
    assert "cannot read the backups" in NOT_ROTATABLE["pgbackrest-cipher-pass"]
    assert any(r.name.endswith("-secret-pgbackrest-cipher-pass") for r in plan.of_type(tokens.SECRET))


def test_the_stanza_is_created_and_archiving_checked_before_the_update_goes_on(plan: Plan, stack: str) -> None:
    job = container(plan, "postgres-pgbackrest")
    server = container(plan, "postgres")
    assert server.urn in job.dependencies
    assert job.inputs["image"] == server.inputs["image"]
    assert {u["file"] for u in job.inputs["uploads"]} == {u["file"] for u in server.inputs["uploads"]}
    script = job.inputs["command"][0]
    assert "stanza-create" in script and script.rstrip().splitlines()[-2].endswith("check")
    assert plan.outputs["jobs"]["pgbackrest-stanza"]  # its failure fails `pulumi up`
