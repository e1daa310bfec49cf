"""The policy pack, probed as a reviewer would: every branch of every policy is made to fire on a
real plan (a stack as the program declares it), altered the way an attacker or a careless edit
would alter it, and the unaltered stacks pass the whole pack."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from components.lib import tokens
from components.settings import GENERATED_SECRET_NAMES, load_settings
from harness import pulumi_sdk
from harness.mock_engine import DeclaredResource, Plan, load_stack_config, mock_kms_key_arn, run_program
from ops import policy as policy_tool
from policy import rules
from policy.rules import expand_action

Props = dict[str, Any]
Change = Callable[[Props], Props]

USER_POLICY = tokens.IAM_USER_POLICY
SECRET = tokens.SECRET
CONTAINER = tokens.CONTAINER


def test_the_packs_copy_of_the_names_agrees_with_the_programs() -> None:
    """The pack runs without the program's imports, so it keeps a copy of components/lib/tokens.py."""
    copied = {name: value for name, value in vars(rules).items() if name.isupper() and hasattr(tokens, name)}
    assert copied == {name: getattr(tokens, name) for name in copied}
    assert set(copied) >= {"LABEL_PREFIX", "CONTAINER", "REMOTE_IMAGE", "BUILT_IMAGE", "BUCKET", "SECRET", "KMS_KEY"}
    assert {"VOLUME", "IAM_POLICIES", "HEALTH_CHECK", "METRIC_ALARM", "SNS_SUBSCRIPTION"} <= set(copied)
    samples = [{}, {"labels": None}, {"labels": [{"label": "a", "value": "1"}, {"value": "no label"}]}]
    assert [rules.labels_of(sample) for sample in samples] == [tokens.labels_of(sample) for sample in samples]
    assert rules.labels_of(samples[2]) == {"a": "1"}


def altered(plan: Plan, type_: str, name: str, change: Change) -> Plan:
    """`plan` with one resource's inputs and outputs changed by `change` (on copies)."""
    matches = [r for r in plan.resources if (r.type, r.name) == (type_, name)]
    assert len(matches) == 1, f"{len(matches)} {type_} named {name}"

    def edit(resource: DeclaredResource) -> DeclaredResource:
        if resource is not matches[0]:
            return resource
        return dataclasses.replace(
            resource,
            plain_inputs=change(copy.deepcopy(resource.plain_inputs)),
            plain_outputs=change(copy.deepcopy(resource.plain_outputs)),
        )

    return dataclasses.replace(plan, resources=[edit(r) for r in plan.resources])


def fired(plan: Plan) -> list[str]:
    """`policy: resource: message` of every mandatory violation of the stack's pack."""
    found = policy_tool.check(plan, policy_tool.policy_config(plan.stack))
    return [f"{v.policy}: {v.resource}: {v.message}" for v in found if not v.advisory]


def setting(**values: Any) -> Change:
    return lambda props: props | values


def with_upload(file_suffix: str, edit: Callable[[str], str]) -> Change:
    def change(props: Props) -> Props:
        for upload in props["uploads"]:
            if str(upload["file"]).endswith(file_suffix):
                upload["content"] = edit(str(upload["content"]))
        return props

    return change


def with_statement(**statement: Any) -> Change:
    """An identity's policy with one more Allow statement, as a careless edit would add it."""

    def change(props: Props) -> Props:
        document = json.loads(props["policy"])
        document["Statement"].append({"Effect": "Allow"} | statement)
        return props | {"policy": json.dumps(document)}

    return change


def without(key: str) -> Change:
    return lambda props: {k: v for k, v in props.items() if k != key}


BUCKET_ARN = "arn:aws:s3:::audit-x-prod-backups-euw1"
PROD_KEY_ARN = mock_kms_key_arn("audit-x-prod-kms")
PROD_SEED_KEY_ARN = mock_kms_key_arn("audit-x-prod-staging-seed")
PROXY_CONFIG = "haproxy.cfg.template"

# (resource type, resource name in prod, the alteration, what the pack must say)
ALTERATIONS = [
    # pinned-images
    (
        tokens.REMOTE_IMAGE,
        "audit-x-prod-redis-image",
        setting(name="redis:latest"),
        "pinned-images: audit-x-prod-redis-image: image 'redis:latest' is not pinned to a version tag or digest",
    ),
    (
        tokens.REMOTE_IMAGE,
        "audit-x-prod-redis-image",
        setting(name="redis"),
        "pinned-images: audit-x-prod-redis-image: image 'redis' is not pinned",
    ),
    (
        tokens.BUILT_IMAGE,
        "audit-x-prod-backup-image",
        setting(imageName="audit-x-prod-backup:latest"),
        "pinned-images: audit-x-prod-backup-image: built image 'audit-x-prod-backup:latest' is tagged latest",
    ),
    (
        tokens.BUILT_IMAGE,
        "audit-x-prod-backup-image",
        lambda p: p | {"build": p["build"] | {"args": p["build"]["args"] | {"POSTGRES_IMAGE": "postgres"}}},
        "pinned-images: audit-x-prod-backup-image: built from POSTGRES_IMAGE='postgres', which is not pinned",
    ),
    # hardened-containers
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(memory=0),
        "hardened-containers: audit-x-prod-web-0: has no memory limit",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(logOpts={}),
        "hardened-containers: audit-x-prod-web-0: has no log rotation",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(logDriver="syslog"),
        "hardened-containers: audit-x-prod-web-0: has no log rotation",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        without("healthcheck"),
        "hardened-containers: audit-x-prod-web-0: is long-running without a health check",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(restart="no"),
        "hardened-containers: audit-x-prod-web-0: is long-running with restart policy 'no'",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(privileged=True),
        "hardened-containers: audit-x-prod-web-0: runs privileged",
    ),
    # docker-socket: every way to the daemon
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(privileged=True),
        "docker-socket: audit-x-prod-web-0: is privileged: it can reach the Docker socket and the whole host",
    ),
    (
        CONTAINER,
        "audit-x-prod-collector",
        setting(networkMode="host"),
        "docker-socket: audit-x-prod-collector: shares the host's network",
    ),
    (
        CONTAINER,
        "audit-x-prod-collector",
        setting(pidMode="host"),
        "docker-socket: audit-x-prod-collector: shares the host's process namespace",
    ),
    (
        CONTAINER,
        "audit-x-prod-collector",
        setting(capabilities={"adds": ["SYS_ADMIN"]}),
        "docker-socket: audit-x-prod-collector: adds capabilities ['SYS_ADMIN']",
    ),
    *[
        (
            CONTAINER,
            "audit-x-prod-collector",
            setting(volumes=[{"hostPath": path, "containerPath": "/host", "readOnly": True}]),
            "docker-socket: audit-x-prod-collector: mounts the Docker socket but is 'collector', not the read-only API proxy",
        )
        for path in (
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/srv/docker/api.sock",
            "/run/containerd/containerd.sock",
            "/var/run",
            "/run/",
            "/var",
            "/",
            "/var/lib/../run/docker.sock",
            "/run/docker",
        )
    ],
    (
        CONTAINER,
        "audit-x-prod-collector",
        setting(mounts=[{"source": "/run", "target": "/host-run", "type": "bind", "readOnly": True}]),
        "docker-socket: audit-x-prod-collector: mounts the Docker socket but is 'collector'",
    ),
    (
        CONTAINER,
        "audit-x-prod-docker-api",
        lambda p: p | {"volumes": [v | {"readOnly": False} for v in p["volumes"]]},
        "docker-socket: audit-x-prod-docker-api: mounts the Docker socket writable",
    ),
    (
        CONTAINER,
        "audit-x-prod-docker-api",
        with_upload(
            PROXY_CONFIG, lambda c: c.replace("http-request deny unless METH_GET", "http-request allow if TRUE", 1)
        ),
        "docker-socket: audit-x-prod-docker-api: the Docker API proxy could let a write through: its first rule is not",
    ),
    (
        CONTAINER,
        "audit-x-prod-docker-api",
        with_upload(
            PROXY_CONFIG,
            lambda c: c.replace(
                "http-request deny unless METH_GET",
                "http-request deny unless METH_GET\n    http-request allow if { method POST }",
                1,
            ),
        ),
        "docker-socket: audit-x-prod-docker-api: the Docker API proxy could let a write through: it names POST",
    ),
    (
        CONTAINER,
        "audit-x-prod-docker-api",
        with_upload(PROXY_CONFIG, lambda c: c.rstrip() + "\n    http-request allow\n"),
        "docker-socket: audit-x-prod-docker-api: the Docker API proxy could let a write through: its last rule is not",
    ),
    # published-ports
    (
        CONTAINER,
        "audit-x-prod-postgres",
        setting(ports=[{"internal": 5432, "external": 5432}]),
        "published-ports: audit-x-prod-postgres: is a data service (postgres) and publishes [5432]",
    ),
    (
        CONTAINER,
        "audit-x-prod-grafana",
        setting(ports=[{"internal": 3000, "external": 3000}]),
        "published-ports: audit-x-prod-grafana: publishes [3000], but only the edge proxy publishes ports",
    ),
    (
        CONTAINER,
        "audit-x-prod-edge",
        lambda p: p | {"ports": [*p["ports"], {"internal": 8080, "external": 8080}]},
        "published-ports: audit-x-prod-edge: the edge publishes [80, 443, 8080]; only 80 and 443 are allowed",
    ),
    (
        CONTAINER,
        "audit-x-prod-web-0",
        setting(publishAllPorts=True),
        "published-ports: audit-x-prod-web-0: publishes all its ports",
    ),
    # least-privilege-iam: judged by what the actions grant
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="*", Resource="*"),
        "least-privilege-iam: audit-x-prod-backup-writer-policy: allows every action on every resource",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:Del*", Resource=f"{BUCKET_ARN}/*"),
        "least-privilege-iam: audit-x-prod-backup-writer-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:DeleteAccessGrant",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:DELETEOBJECTVERSION", Resource=f"{BUCKET_ARN}/*"),
        "least-privilege-iam: audit-x-prod-backup-writer-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:DeleteObjectVersion",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:Put*", Resource=BUCKET_ARN),
        "least-privilege-iam: audit-x-prod-backup-writer-policy: grants permissions management (",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:Put*Configuration", Resource=BUCKET_ARN),
        "s3:PutLifecycleConfiguration",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:BypassGovernanceRetention", Resource=f"{BUCKET_ARN}/*"),
        # Permissions management in AWS's catalogue, and said once: as what it does to backups.
        "least-privilege-iam: audit-x-prod-backup-writer-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:BypassGovernanceRetention",
    ),
    (
        USER_POLICY,
        "audit-x-prod-watcher-heartbeat-policy",
        with_statement(Action="iam:*AccessKey*", Resource="*"),
        "least-privilege-iam: audit-x-prod-watcher-heartbeat-policy: grants permissions management (iam:CreateAccessKey",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-reader-policy",
        with_statement(Action="s3:GetObjekt", Resource=f"{BUCKET_ARN}/*"),
        "least-privilege-iam: audit-x-prod-backup-reader-policy: grants s3:GetObjekt, which AWS does not know",
    ),
    # least-privilege-iam: pgBackRest's exception holds exactly, nothing beside it
    (
        USER_POLICY,
        "audit-x-prod-pgbackrest-policy",
        with_statement(Action="s3:DeleteObject", Resource=f"{BUCKET_ARN}/daily/*"),
        "least-privilege-iam: audit-x-prod-pgbackrest-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:DeleteObject",
    ),
    (
        USER_POLICY,
        "audit-x-prod-pgbackrest-policy",
        with_statement(Action="s3:DeleteObjectVersion", Resource=f"{BUCKET_ARN}/pgbackrest/*"),
        "least-privilege-iam: audit-x-prod-pgbackrest-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:DeleteObjectVersion",
    ),
    (
        USER_POLICY,
        "audit-x-prod-backup-writer-policy",
        with_statement(Action="s3:DeleteObject", Resource=f"{BUCKET_ARN}/pgbackrest/*"),
        "least-privilege-iam: audit-x-prod-backup-writer-policy: can destroy or shorten stored objects, or change a "
        "bucket's rules: s3:DeleteObject",
    ),
    # secrets-encrypted
    (
        SECRET,
        "audit-x-prod-secret-postgres-password",
        without("kmsKeyId"),
        "secrets-encrypted: audit-x-prod-secret-postgres-password: is encrypted with the account's default key",
    ),
    (
        SECRET,
        "audit-x-prod-secret-postgres-password",
        setting(kmsKeyId=""),
        "secrets-encrypted: audit-x-prod-secret-postgres-password: is encrypted with the account's default key",
    ),
    (
        SECRET,
        "audit-x-prod-secret-postgres-password",
        setting(recoveryWindowInDays=7),
        "secrets-encrypted: audit-x-prod-secret-postgres-password: has a recovery window of 7 days; at least 30 required",
    ),
    # one-key-per-environment: the key's ARN is an output, which the pack now gets
    (
        SECRET,
        "audit-x-prod-secret-postgres-password",
        setting(kmsKeyId="arn:aws:kms:eu-west-1:999999999999:key/0123456789abcdef0123456789abcdef"),
        "one-key-per-environment: audit-x-prod-secret-postgres-password: audit-x/prod/postgres-password is encrypted "
        "with a key from outside this environment",
    ),
    # hardened-buckets
    *[
        (
            type_,
            f"audit-x-prod-backups-{part}",
            change,
            f"hardened-buckets: audit-x-prod-backups: bucket audit-x-prod-backups-euw1 {why}",
        )
        for type_, part, change, why in (
            (
                "aws:s3/bucketVersioning:BucketVersioning",
                "versioning",
                setting(versioningConfiguration={"status": "Suspended"}),
                "is not versioned",
            ),
            (
                "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "encryption",
                setting(rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]),
                "is not encrypted with KMS",
            ),
            (
                "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                "public-access-block",
                setting(restrictPublicBuckets=False),
                "does not block public access",
            ),
            (
                "aws:s3/bucketPolicy:BucketPolicy",
                "policy",
                setting(policy=json.dumps({"Statement": []})),
                "does not deny requests without TLS",
            ),
            (
                tokens.BUCKET_LIFECYCLE,
                "lifecycle",
                setting(rules=[]),
                "has no lifecycle rules",
            ),
            (
                "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                "object-lock",
                setting(objectLockEnabled="Disabled"),
                "has no Object Lock",
            ),
        )
    ],
    # stateful-protected
    (
        tokens.VOLUME,
        "audit-x-prod-postgres-data",
        lambda p: p,
        "stateful-protected: audit-x-prod-postgres-data: audit-x-prod-postgres-data holds state and is not protected",
    ),
]


def unprotect(plan: Plan, name: str) -> Plan:
    return dataclasses.replace(
        plan, resources=[dataclasses.replace(r, protect=False) if r.name == name else r for r in plan.resources]
    )


@pytest.mark.parametrize(
    ("type_", "name", "change", "expected"),
    ALTERATIONS,
    ids=[f"{i:02d}-{a[3].split(':')[0]}-{a[1].removeprefix('audit-x-prod-')}" for i, a in enumerate(ALTERATIONS)],
)
def test_each_alteration_of_prods_plan_is_caught(
    plans: dict, type_: str, name: str, change: Change, expected: str
) -> None:
    prod = plans["prod"]
    assert fired(prod) == []
    plan = altered(prod, type_, name, change)
    if expected.startswith("stateful-protected"):
        plan = unprotect(plan, name)
    found = fired(plan)
    assert any(expected in message for message in found), found


def test_a_second_key_for_some_secrets_is_caught(plans: dict) -> None:
    prod = plans["prod"]
    watcher_key = next(r for r in prod.of_type(tokens.KMS_KEY) if r.name == "audit-x-prod-watcher-key")
    other = str(watcher_key.plain_outputs["arn"])  # a key of this stack, but not the secrets' own
    plan = altered(prod, SECRET, "audit-x-prod-secret-postgres-password", setting(kmsKeyId=other))
    assert "one-key-per-environment: (stack): secrets use 2 different KMS keys; one per environment expected" in fired(
        plan
    )


def test_a_policy_document_still_unknown_during_a_preview_is_not_judged(plans: dict) -> None:
    """A new identity's policy is an unknown value in a first preview: the SDK notes that the
    policy could not run (advisory) and reports no violation, and so does ops.policy."""
    plan = altered(
        plans["prod"], USER_POLICY, "audit-x-prod-backup-writer-policy", setting(policy=pulumi_sdk.UNKNOWN_STRING)
    )
    found = policy_tool.check(plan, policy_tool.policy_config("prod"))
    assert [v for v in found if not v.advisory] == []
    assert [v.policy for v in found if "can't run during preview" in v.message] == ["least-privilege-iam"]


def test_staging_pages_nobody_and_the_advisory_policy_says_so(plans: dict) -> None:
    found = policy_tool.check(plans["staging"], policy_tool.policy_config("staging"))
    advisory = [v.message for v in found if v.advisory]
    assert advisory == [
        "critical alerts reach email but page nobody: set `pulumi config set --secret pagerdutyRoutingKey <key>`"
    ]


def test_wildcards_are_expanded_by_aws_s_catalogue() -> None:
    puts = expand_action("s3:Put*")
    assert {"s3:PutObject", "s3:PutBucketPolicy", "s3:PutLifecycleConfiguration"} <= set(puts)
    assert len(puts) > 30
    assert expand_action("S3:getobject") == ["s3:GetObject"]  # IAM names are case-insensitive
    assert expand_action("s3:NoSuchThing") == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_both_stacks_pass_the_whole_pack(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert policy_tool.main([stack]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "violations=0"


def test_a_broken_copy_of_prods_config_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    broken = load_stack_config("prod") | {
        "audit-x:protectStatefulResources": "false",
        "audit-x:secretRecoveryWindowDays": "7",
    }
    violations = policy_tool.check(run_program("prod", config=broken), policy_tool.policy_config("prod"))
    policies = {v.policy for v in violations if not v.advisory}
    assert policies == {"stateful-protected", "secrets-encrypted"}
    # Every secret: the generated ones, the four access keys (backup writer, reader, heartbeat,
    # pgBackRest) and prod's staging-seed masking key.
    assert len([v for v in violations if v.policy == "secrets-encrypted"]) == len(GENERATED_SECRET_NAMES) + 4 + 1


def test_policy_config_agrees_with_the_stacks() -> None:
    for stack in ("staging", "prod"):
        settings = load_settings(load_stack_config(stack))
        config = policy_tool.policy_config(stack)
        assert config["stateful-protected"]["required"] is settings.protect_stateful_resources
        # A stack whose state is protected is also watched from outside (issue: who watches the watcher).
        assert config["watched-from-outside"]["required"] is settings.protect_stateful_resources
        assert config["secrets-encrypted"]["minimumRecoveryWindowDays"] == settings.secret_recovery_window_days


@pytest.mark.parametrize(
    ("drop", "why"),
    [
        (tokens.HEALTH_CHECK, "nothing probes the app's /health from outside the host"),
        (tokens.METRIC_ALARM, "no alarm fires when the collector's heartbeat stops"),
        (tokens.SNS_SUBSCRIPTION, "nobody is subscribed to the external watcher's topic"),
    ],
)
def test_prod_without_its_external_watcher_is_refused(plans: dict, drop: str, why: str) -> None:
    prod = plans["prod"]
    altered = dataclasses.replace(prod, resources=[r for r in prod.resources if r.type != drop])
    found = [v.message for v in policy_tool.check(altered, policy_tool.policy_config("prod")) if not v.advisory]
    assert any(why in message for message in found), found
    assert [v for v in policy_tool.check(prod, policy_tool.policy_config("prod")) if not v.advisory] == []


# staging-seed-boundary: staging's seed reader and prod's writer, each altered as a careless edit
# would; the other stack's bucket and keys come from prod's export, through the StackReference.
PROD_SEEDS = f"{BUCKET_ARN}/staging-seed/postgres/audit_x_prod/*"
SEED_ALTERATIONS = [
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:GetObject"], Resource=f"{BUCKET_ARN}/*"),
        f"reads {BUCKET_ARN}/*: only staging-seed/postgres/audit_x_prod/ may be read",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:GetObject"], Resource=f"{BUCKET_ARN}/daily/postgres/audit_x_prod/*"),
        "only staging-seed/postgres/audit_x_prod/ may be read in another environment's bucket",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:ListBucket"], Resource=BUCKET_ARN),
        "lists arn:aws:s3:::audit-x-prod-backups-euw1, another environment's bucket, beyond",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:PutObject"], Resource=PROD_SEEDS),
        "may s3:PutObject in arn:aws:s3:::audit-x-prod-backups-euw1, another environment's bucket",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:Get*"], Resource="*"),
        "grants S3 or KMS actions on every resource",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["s3:GetObject"], Resource="arn:aws:s3:::audit-x-other-bucket/staging-seed/*"),
        "reaches arn:aws:s3:::audit-x-other-bucket, a bucket of another environment that exports no seeds",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        # Prod's own key decrypts every backup and secret of prod's: never staging's to use.
        with_statement(Action=["kms:Decrypt"], Resource=PROD_KEY_ARN),
        "a key of another environment that is not its exported seed key",
    ),
    (
        "staging",
        "audit-x-staging-seed-reader-policy",
        with_statement(Action=["kms:Encrypt"], Resource=PROD_SEED_KEY_ARN),
        "may kms:Encrypt with another environment's key: only kms:Decrypt",
    ),
    (
        "prod",
        "audit-x-prod-backup-writer-policy",
        with_statement(Action=["s3:PutObject"], Resource=f"{BUCKET_ARN}/*"),
        f"may write {BUCKET_ARN}/*, which covers staging-seed/",
    ),
    (
        "prod",
        "audit-x-prod-backup-writer-policy",
        with_statement(Action=["s3:PutObject"], Resource=f"{BUCKET_ARN}/staging*"),
        f"may write {BUCKET_ARN}/staging*, which covers staging-seed/",
    ),
]


@pytest.mark.parametrize(
    ("stack", "name", "change", "expected"),
    SEED_ALTERATIONS,
    ids=[f"{i:02d}-{a[0]}-{a[1].split('-')[-2]}" for i, a in enumerate(SEED_ALTERATIONS)],
)
def test_each_grant_beyond_the_seed_boundary_is_caught(
    plans: dict, stack: str, name: str, change: Change, expected: str
) -> None:
    assert fired(plans[stack]) == []
    found = fired(altered(plans[stack], USER_POLICY, name, change))
    prefix = f"staging-seed-boundary: {name}: {name} "
    assert any(message.startswith(prefix) and expected in message for message in found), found


def test_staging_without_prods_export_may_read_nothing_of_prods(plans: dict) -> None:
    """Before prod has exported `stagingSeed` (the first rollout), the reader's grants to prod's
    bucket would reach a bucket that exports no seeds: the pack refuses them."""
    staging = plans["staging"]
    reference = next(r for r in staging.resources if r.type == "pulumi:pulumi:StackReference")
    exported = reference.plain_outputs["outputs"]["stagingSeed"]
    assert exported["bucketArn"] == BUCKET_ARN and exported["kmsKeyArn"] == PROD_SEED_KEY_ARN
    without_export = altered(
        staging,
        "pulumi:pulumi:StackReference",
        reference.name,
        lambda props: props | {"outputs": {k: v for k, v in props.get("outputs", {}).items() if k != "stagingSeed"}},
    )
    found = fired(without_export)
    assert any("a bucket of another environment that exports no seeds" in message for message in found), found


BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
WRITER_POLICY = "audit-x-prod-backup-writer-policy"


def with_lifecycle_rule(**rule: Any) -> Change:
    """The bucket's lifecycle with one more rule, as a careless edit would add it."""
    return lambda props: props | {"rules": [*props["rules"], {"id": "careless", "status": "Enabled"} | rule]}


def with_noncurrent_days(days: int) -> Change:
    def change(props: Props) -> Props:
        for rule in props["rules"]:
            if "noncurrentVersionExpiration" in rule:
                rule["noncurrentVersionExpiration"]["noncurrentDays"] = days
        return props

    return change


def granted_by_the_bucket(action: str) -> Change:
    def change(props: Props) -> Props:
        document = json.loads(props["policy"])
        document["Statement"].append(
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": action, "Resource": f"{BUCKET_ARN}/*"}
        )
        return props | {"policy": json.dumps(document)}

    return change


# Edits the pack once let through with 0 violations (issue 24); each must give exactly one.
BLIND_SPOTS = [
    (
        USER_POLICY,
        WRITER_POLICY,
        with_statement(NotAction="s3:GetObject", Resource="*"),
        "allows every action but s3:GetObject (NotAction)",
    ),
    (
        USER_POLICY,
        WRITER_POLICY,
        with_statement(Action="s3:DeleteObjectVersion", NotResource=f"{BUCKET_ARN}/daily/*"),
        "can destroy or shorten stored objects, or change a bucket's rules: s3:DeleteObjectVersion",
    ),
    (
        USER_POLICY,
        "audit-x-prod-pgbackrest-policy",
        with_statement(Action="s3:DeleteObject", NotResource=f"{BUCKET_ARN}/daily/*"),
        "can destroy or shorten stored objects, or change a bucket's rules: s3:DeleteObject",
    ),
    (
        USER_POLICY,
        WRITER_POLICY,
        with_statement(Action="kms:ScheduleKeyDeletion", Resource=PROD_KEY_ARN),
        "can disable or delete a KMS key, and so everything encrypted with it: kms:ScheduleKeyDeletion",
    ),
    (
        USER_POLICY,
        WRITER_POLICY,
        with_statement(Action="kms:Disable*", Resource=PROD_KEY_ARN),
        "can disable or delete a KMS key, and so everything encrypted with it: kms:DisableKey, kms:DisableKeyRotation",
    ),
    (
        BUCKET_POLICY,
        "audit-x-prod-backups-policy",
        granted_by_the_bucket("s3:DeleteObjectVersion"),
        "can destroy or shorten stored objects, or change a bucket's rules: s3:DeleteObjectVersion",
    ),
    (
        BUCKET_POLICY,
        "audit-x-prod-backups-policy",
        granted_by_the_bucket("s3:BypassGovernanceRetention"),
        "can destroy or shorten stored objects, or change a bucket's rules: s3:BypassGovernanceRetention",
    ),
    (
        BUCKET_POLICY,
        "audit-x-prod-backups-policy",
        granted_by_the_bucket("s3:PutLifecycleConfiguration"),
        "can destroy or shorten stored objects, or change a bucket's rules: s3:PutLifecycleConfiguration",
    ),
    (
        LIFECYCLE,
        "audit-x-prod-backups-lifecycle",
        with_noncurrent_days(1),
        "expires noncurrent versions after 1 days (rule expire-noncurrent-versions), before the default retention of 21",
    ),
    (
        LIFECYCLE,
        "audit-x-prod-backups-lifecycle",
        with_lifecycle_rule(filter={"prefix": "pgbackrest/"}, expiration={"days": 30}),
        "expires pgBackRest's repository after 30 days by age (rule careless)",
    ),
    (
        LIFECYCLE,
        "audit-x-prod-backups-lifecycle",
        with_lifecycle_rule(filter={"prefix": ""}, expiration={"days": 400}),
        "expires every object after 400 days by age (rule careless)",
    ),
    (
        OBJECT_LOCK,
        "audit-x-prod-backups-object-lock",
        without("rule"),
        "has no default retention: what pgBackRest writes is not locked",
    ),
]


@pytest.mark.parametrize(
    ("type_", "name", "change", "expected"), BLIND_SPOTS, ids=[f"{i:02d}" for i in range(len(BLIND_SPOTS))]
)
def test_each_blind_spot_is_caught_once(plans: dict, type_: str, name: str, change: Change, expected: str) -> None:
    found = fired(altered(plans["prod"], type_, name, change))
    assert len(found) == 1 and expected in found[0], found
