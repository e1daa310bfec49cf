"""The policy pack: each policy reports a violating resource and passes a compliant one, and the
real stacks pass it whole while a broken copy of a stack's config does not."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.settings import GENERATED_SECRET_NAMES, load_settings
from policy.rules import CONTAINER, POLICIES
from tools import policy as policy_tool
from tools.mock_engine import load_stack_config, run_program

POLICY = {p.name: p for p in POLICIES}


def options(protect: bool = False, parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def violations_of(
    name: str, resource_type: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> list[str]:
    found: list[str] = []
    policy = POLICY[name]
    assert isinstance(policy, ResourceValidationPolicy)
    args = ResourceValidationArgs(resource_type, props, "urn:x::r", "r", options(), None, config or {})
    policy.validate(args, lambda message, urn: found.append(message))
    return found


def stack_violations(name: str, resources: list[PolicyResource], config: dict[str, Any] | None = None) -> list[str]:
    found: list[str] = []
    policy = POLICY[name]
    assert isinstance(policy, StackValidationPolicy)
    policy.validate(StackValidationArgs(resources, config or {}), lambda message, urn: found.append(message))
    return found


def resource(
    type_: str, name: str, props: dict[str, Any], *, parent: PolicyResource | None = None, protect: bool = False
) -> PolicyResource:
    return PolicyResource(type_, props, f"urn:x::{name}", name, options(protect), None, parent, [], {})


def labels(**values: str) -> list[dict[str, str]]:
    return [{"label": f"io.audit-x.{k}", "value": v} for k, v in values.items()]


GOOD_CONTAINER = {
    "restart": "unless-stopped",
    "memory": 256,
    "logDriver": "json-file",
    "logOpts": {"max-size": "20m", "max-file": "3"},
    "healthcheck": {"tests": ["CMD-SHELL", "true"]},
    "labels": labels(service="app", role="web"),
}


def test_pinned_images() -> None:
    remote = "docker:index/remoteImage:RemoteImage"
    assert violations_of("pinned-images", remote, {"name": "postgres:17.6-bookworm"}) == []
    assert violations_of("pinned-images", remote, {"name": "postgres:latest"}) == [
        "image 'postgres:latest' is not pinned to a version tag or digest"
    ]
    assert violations_of("pinned-images", remote, {"name": "postgres"})
    built = "docker:index/image:Image"
    assert (
        violations_of(
            "pinned-images", built, {"imageName": "x:abc", "build": {"args": {"POSTGRES_IMAGE": "postgres:17.6"}}}
        )
        == []
    )
    assert violations_of(
        "pinned-images", built, {"imageName": "x:abc", "build": {"args": {"POSTGRES_IMAGE": "postgres"}}}
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"privileged": True}, "runs privileged"),
        ({"memory": 0}, "has no memory limit"),
        ({"logOpts": {}}, "has no log rotation"),
        ({"healthcheck": None}, "without a health check"),
        ({"restart": "no"}, "restart policy 'no'"),
    ],
)
def test_hardened_containers(change: dict[str, Any], why: str) -> None:
    assert violations_of("hardened-containers", CONTAINER, GOOD_CONTAINER) == []
    found = violations_of("hardened-containers", CONTAINER, GOOD_CONTAINER | change)
    assert len(found) == 1 and why in found[0]


def test_one_shot_jobs_need_no_health_check_or_restart() -> None:
    job = GOOD_CONTAINER | {"attach": True, "restart": "no", "healthcheck": None}
    assert violations_of("hardened-containers", CONTAINER, job) == []


SOCKET = {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}


def proxy_with(config: str) -> dict[str, Any]:
    return GOOD_CONTAINER | {
        "labels": labels(service="docker-api"),
        "volumes": [SOCKET],
        "uploads": [{"file": "/usr/local/etc/haproxy/haproxy.cfg.template", "content": config}],
    }


def test_only_the_docker_api_proxy_holds_the_socket_and_only_as_the_program_writes_it(plans: dict) -> None:
    proxy = next(c for c in plans["prod"].of_type(CONTAINER) if c.name == "audit-x-prod-docker-api")
    assert violations_of("docker-socket", CONTAINER, proxy.inputs) == []
    collector = GOOD_CONTAINER | {"labels": labels(service="collector")}
    assert violations_of("docker-socket", CONTAINER, collector | {"volumes": [SOCKET]}) == [
        "mounts the Docker socket but is 'collector', not the read-only API proxy (docker-api)"
    ]


@pytest.mark.parametrize(
    "mount",
    [
        {"hostPath": "/run/docker.sock", "containerPath": "/s", "readOnly": True},
        {"hostPath": "/var/run", "containerPath": "/host-run", "readOnly": True},
    ],
)
def test_the_socket_under_another_path_is_still_the_socket(mount: dict[str, Any]) -> None:
    assert violations_of("docker-socket", CONTAINER, GOOD_CONTAINER | {"volumes": [mount]}) == [
        "mounts the Docker socket but is 'app', not the read-only API proxy (docker-api)"
    ]


def test_a_privileged_or_host_network_container_is_refused() -> None:
    assert violations_of("docker-socket", CONTAINER, GOOD_CONTAINER | {"privileged": True}) == [
        "is privileged: it can reach the Docker socket and the whole host"
    ]
    assert violations_of("docker-socket", CONTAINER, GOOD_CONTAINER | {"networkMode": "host"}) == [
        "shares the host's network: the Docker API proxy's private network is bypassed"
    ]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("frontend f\n    http-request allow if { path /info }\n    http-request deny\n", "its first rule is not"),
        (
            "frontend f\n    http-request deny unless METH_GET\n    http-request allow if { method DELETE }\n"
            "    http-request deny\n",
            "it names DELETE",
        ),
        ("frontend f\n    http-request deny unless METH_GET\n    http-request allow\n", "its last rule is not"),
    ],
)
def test_a_proxy_that_could_let_a_write_through_is_refused(config: str, problem: str) -> None:
    found = violations_of("docker-socket", CONTAINER, proxy_with(config))
    assert len(found) == 1 and problem in found[0], found


def test_published_ports() -> None:
    edge = GOOD_CONTAINER | {"labels": labels(service="edge")}
    web_ports = [{"internal": 80, "external": 80}, {"internal": 443, "external": 443}]
    assert violations_of("published-ports", CONTAINER, edge | {"ports": web_ports}) == []
    assert violations_of("published-ports", CONTAINER, edge | {"ports": [{"internal": 8080, "external": 8080}]})
    postgres = GOOD_CONTAINER | {"labels": labels(service="postgres"), "ports": [{"internal": 5432, "external": 5432}]}
    assert violations_of("published-ports", CONTAINER, postgres) == [
        "is a data service (postgres) and publishes [5432]"
    ]
    assert violations_of("published-ports", CONTAINER, GOOD_CONTAINER | {"ports": web_ports})


def test_least_privilege_iam() -> None:
    user_policy = "aws:iam/userPolicy:UserPolicy"
    admin = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    assert violations_of("least-privilege-iam", user_policy, {"user": "ops", "policy": admin}) == [
        "allows every action on every resource"
    ]
    delete = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": "arn:aws:s3:::b/*"}
            ]
        }
    )
    assert violations_of("least-privilege-iam", user_policy, {"user": "audit-x-prod-backup-writer", "policy": delete})
    put = json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::b/daily/*"}]}
    )
    assert (
        violations_of("least-privilege-iam", user_policy, {"user": "audit-x-prod-backup-writer", "policy": put}) == []
    )


def test_secrets_encrypted_with_a_recovery_window() -> None:
    secret = "aws:secretsmanager/secret:Secret"
    good = {"name": "audit-x/prod/x", "kmsKeyId": "arn:aws:kms:eu-west-1:1:key/k", "recoveryWindowInDays": 30}
    config = {"minimumRecoveryWindowDays": 30}
    assert violations_of("secrets-encrypted", secret, good, config) == []
    assert violations_of("secrets-encrypted", secret, good | {"recoveryWindowInDays": 7}, config) == [
        "has a recovery window of 7 days; at least 30 required"
    ]
    assert violations_of("secrets-encrypted", secret, good | {"kmsKeyId": ""}, config)


def bucket_family(**overrides: dict[str, Any]) -> list[PolicyResource]:
    component = resource("audit-x:backup:BackupBucket", "backups", {})
    props = {
        "Bucket": {"bucket": "b"},
        "BucketVersioning": {"versioningConfiguration": {"status": "Enabled"}},
        "BucketServerSideEncryptionConfiguration": {
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]
        },
        "BucketPublicAccessBlock": dict.fromkeys(
            ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True
        ),
        "BucketPolicy": {
            "policy": json.dumps(
                {"Statement": [{"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
            )
        },
        "BucketLifecycleConfiguration": {"rules": [{"id": "expire-daily"}]},
    } | overrides
    types = {
        "Bucket": "aws:s3/bucket:Bucket",
        "BucketVersioning": "aws:s3/bucketVersioning:BucketVersioning",
        "BucketServerSideEncryptionConfiguration": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "BucketPublicAccessBlock": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "BucketPolicy": "aws:s3/bucketPolicy:BucketPolicy",
        "BucketLifecycleConfiguration": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    }
    return [component] + [resource(types[k], k, v, parent=component) for k, v in props.items()]


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"BucketVersioning": {"versioningConfiguration": {"status": "Suspended"}}}, "is not versioned"),
        (
            {
                "BucketServerSideEncryptionConfiguration": {
                    "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
                }
            },
            "is not encrypted with KMS",
        ),
        ({"BucketPublicAccessBlock": {"blockPublicAcls": True}}, "does not block public access"),
        ({"BucketPolicy": {"policy": json.dumps({"Statement": []})}}, "does not deny requests without TLS"),
        ({"BucketLifecycleConfiguration": {"rules": []}}, "has no lifecycle rules"),
    ],
)
def test_hardened_buckets(override: dict[str, Any], why: str) -> None:
    assert stack_violations("hardened-buckets", bucket_family()) == []
    found = stack_violations("hardened-buckets", bucket_family(**override))
    assert found == [f"bucket b {why}"]


def test_stateful_protected_where_required() -> None:
    volume = resource("docker:index/volume:Volume", "postgres-data", {})
    protected = resource("docker:index/volume:Volume", "postgres-data", {}, protect=True)
    assert stack_violations("stateful-protected", [volume], {"required": False}) == []
    assert stack_violations("stateful-protected", [protected], {"required": True}) == []
    assert stack_violations("stateful-protected", [volume], {"required": True}) == [
        "postgres-data holds state and is not protected"
    ]


def test_one_key_per_environment() -> None:
    key = resource("aws:kms/key:Key", "kms", {"arn": "arn:aws:kms:r:1:key/a"})
    mine = resource("aws:secretsmanager/secret:Secret", "s1", {"name": "n1", "kmsKeyId": "arn:aws:kms:r:1:key/a"})
    foreign = resource(
        "aws:secretsmanager/secret:Secret", "s2", {"name": "n2", "kmsKeyId": "arn:aws:kms:r:1:key/other"}
    )
    assert stack_violations("one-key-per-environment", [key, mine]) == []
    found = stack_violations("one-key-per-environment", [key, mine, foreign])
    assert "n2 is encrypted with a key from outside this environment" in found


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
    # Every secret: the generated ones and the three access keys (backup writer, reader, heartbeat).
    assert len([v for v in violations if v.policy == "secrets-encrypted"]) == len(GENERATED_SECRET_NAMES) + 3


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
        ("aws:route53/healthCheck:HealthCheck", "nothing probes the app's /health from outside the host"),
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "no alarm fires when the collector's heartbeat stops"),
        ("aws:sns/topicSubscription:TopicSubscription", "nobody is subscribed to the external watcher's topic"),
    ],
)
def test_prod_without_its_external_watcher_is_refused(plans: dict, drop: str, why: str) -> None:
    prod = plans["prod"]
    altered = dataclasses.replace(prod, resources=[r for r in prod.resources if r.type != drop])
    found = [v.message for v in policy_tool.check(altered, policy_tool.policy_config("prod")) if not v.advisory]
    assert any(why in message for message in found), found
    assert [v for v in policy_tool.check(prod, policy_tool.policy_config("prod")) if not v.advisory] == []
