"""Point-in-time recovery as the program declares it: PostgreSQL built with pgBackRest and
archiving to the backup bucket under `pgbackrest/`, with an identity of its own that may delete
only there, and a configuration whose secrets are only in a secret file.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
pgBackRest's identity, its two files, two environments side by side."""

from __future__ import annotations

import json

import pulumi

from components.backups.pitr import PitrRepository
from components.data.postgres import SERVER_IMAGE_CONTEXT, SPOOL_DIR
from components.lib import tokens
from components.lib.build import REPO_ROOT, image_tag_for
from components.settings import PitrSettings, load_settings
from components.settings.secrets import NOT_ROTATABLE, ROTATABLE_SECRETS
from harness.mock_engine import Plan, fake_secret, load_stack_config, mock_kms_key_arn, run_component
from runner import pitr
from tests.helpers import children, clashes, component_context, container, declared, generated, secrets, uploaded


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


# --- built alone -------------------------------------------------------------------------------

PITR = PitrSettings(retention_days=10, archive_timeout_seconds=45, archive_queue_max_mb=512)


def build_repositories(*environments: str) -> Plan:
    """One repository per environment, in its bucket `acme-<env>-backups`, region eu-central-1."""

    def declare() -> None:
        for environment in environments:
            ctx = component_context(environment)
            store = secrets(ctx)
            repository = PitrRepository(
                ctx.name("pgbackrest"),
                PITR,
                ctx=ctx,
                bucket_name=f"acme-{environment}-backups",
                region="eu-central-1",
                kms_key=store.kms_key,
                secrets=store,
                superuser="acme",
            )
            archiving = repository.archiving()
            files = archiving.files(owner="999")
            pulumi.export(f"{environment}-key-id", repository.identity.access_key.id)
            pulumi.export(f"{environment}-config", repository.config)
            pulumi.export(f"{environment}-secrets", repository.secrets_file)
            pulumi.export(f"{environment}-archiving", [archiving.pgbackrest_version, archiving.archive_timeout_seconds])
            pulumi.export(f"{environment}-archiving-secrets", archiving.secrets)
            pulumi.export(
                f"{environment}-files",
                [[f.path, f.content, getattr(f, "owner", None), type(f).__name__] for f in files],
            )

    return run_component(declare)


def test_pitr_alone_declares_pgbackrests_own_identity_that_may_delete_only_under_its_prefix() -> None:
    plan = build_repositories("test")
    assert children(plan, "audit-x-test-pgbackrest", of="audit-x:backup:PitrRepository") == [
        ("audit-x:platform:AccessKeyIdentity", "audit-x-test-pgbackrest")
    ]
    assert children(plan, "audit-x-test-pgbackrest", of="audit-x:platform:AccessKeyIdentity") == [
        (tokens.IAM_ACCESS_KEY, "audit-x-test-pgbackrest-key"),
        (tokens.IAM_USER, "audit-x-test-pgbackrest"),
        (tokens.IAM_USER_POLICY, "audit-x-test-pgbackrest-policy"),
    ]
    policy = json.loads(declared(plan, tokens.IAM_USER_POLICY, "audit-x-test-pgbackrest-policy").inputs["policy"])
    assert [(s["Action"], s["Resource"]) for s in policy["Statement"]] == [
        (["s3:ListBucket"], "arn:aws:s3:::acme-test-backups"),
        (["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "arn:aws:s3:::acme-test-backups/pgbackrest/*"),
        (["kms:GenerateDataKey", "kms:Decrypt"], mock_kms_key_arn("audit-x-test-kms")),
    ]
    assert policy["Statement"][0]["Condition"] == {"StringLike": {"s3:prefix": ["pgbackrest/*", "pgbackrest"]}}
    assert declared(plan, tokens.SECRET, "audit-x-test-secret-pgbackrest-access-key").inputs["name"] == (
        "audit-x/test/pgbackrest-access-key"
    )


def test_the_config_names_the_bucket_region_key_and_window_and_holds_no_secret() -> None:
    plan = build_repositories("test")
    config = plan.outputs["test-config"]
    assert {
        "[global]",
        "repo1-path=/pgbackrest",
        "repo1-s3-bucket=acme-test-backups",
        "repo1-s3-region=eu-central-1",
        "repo1-s3-endpoint=s3.eu-central-1.amazonaws.com",
        f"repo1-s3-kms-key-id={mock_kms_key_arn('audit-x-test-kms')}",
        "repo1-retention-full=10",
        "archive-push-queue-max=512MiB",
        "pg1-path=/var/lib/postgresql/data/pgdata",
        "pg1-socket-path=/var/run/postgresql",
        # The database's bootstrap superuser: the official image makes no `postgres` role then.
        "pg1-user=acme",
    } <= set(config.splitlines())
    assert not {"repo1-s3-key", "repo1-s3-key-secret", "repo1-cipher-pass"} & {
        line.split("=", 1)[0] for line in config.splitlines()
    }


def test_the_secrets_file_holds_the_key_and_the_passphrase_masked() -> None:
    plan = build_repositories("test")
    assert plan.outputs["test-secrets"] == "[secret]"
    assert plan.plain_outputs["test-secrets"] == (
        "[global]\n"
        f"repo1-s3-key={plan.plain_outputs['test-key-id']}\n"
        f"repo1-s3-key-secret={fake_secret('audit-x-test-pgbackrest-key')}\n"
        f"repo1-cipher-pass={generated(component_context(), 'pgbackrest-cipher-pass')}\n"
    )


def test_archiving_hands_the_server_the_settings_and_both_files_the_secret_one_for_its_owner() -> None:
    plan = build_repositories("test")
    assert plan.outputs["test-archiving"] == [PITR.pgbackrest_version, 45]
    assert plan.outputs["test-archiving-secrets"] == "[secret]"
    assert plan.plain_outputs["test-archiving-secrets"] == plan.plain_outputs["test-secrets"]
    (config, secret) = plan.plain_outputs["test-files"]
    assert config == ["/etc/pgbackrest/pgbackrest.conf", plan.plain_outputs["test-config"], None, "ConfigFile"]
    assert secret == [
        "/run/secrets/pgbackrest/secrets.conf",
        plan.plain_outputs["test-secrets"],
        "999",
        "SecretFile",
    ]


def test_two_environments_repositories_side_by_side_each_reach_only_their_own_bucket() -> None:
    plan = build_repositories("test", "qa")
    assert clashes(plan) == []
    for environment, other in (("test", "qa"), ("qa", "test")):
        policy = declared(plan, tokens.IAM_USER_POLICY, f"audit-x-{environment}-pgbackrest-policy").inputs["policy"]
        assert f"acme-{environment}-backups" in policy
        assert f"acme-{other}-backups" not in policy
        assert mock_kms_key_arn(f"audit-x-{other}-kms") not in policy
        assert f"repo1-s3-bucket=acme-{environment}-backups" in plan.outputs[f"{environment}-config"].splitlines()
