"""A whole environment built alone, from a Settings object and no stack file: the components it
wires, each behind the environment's own providers, and two environments side by side."""

from __future__ import annotations

from typing import Any

import pytest

from components.environment import AuditXEnvironment
from components.settings import Settings
from harness.mock_engine import Plan, run_component
from tests.helpers import children, clashes


def settings_for(environment: str, **extra: Any) -> Settings:
    """The smallest settings an environment takes: every required section, nothing optional."""
    return Settings.model_validate(
        {
            "environment": environment,
            "aws:region": "eu-central-1",
            "dockerHost": f"ssh://deploy@docker.{environment}.example.org",
            "domain": f"{environment}.example.org",
            "protectStatefulResources": False,
            "postgres": {"memoryLimitMb": 1024, "sharedBuffersMb": 256, "effectiveCacheSizeMb": 768},
            "redis": {"memoryLimitMb": 256, "maxMemoryMb": 192},
            "redpanda": {"cores": 1, "memoryMb": 1024, "memoryLimitMb": 1536},
            "influxdb": {"retentionDays": 7, "memoryLimitMb": 512},
            "logs": {"retentionDays": 7},
            "monitoring": {},
            "edge": {"acmeEmail": f"certs@{environment}.example.org"},
            "app": {
                "image": "ghcr.io/audit-x/audit_x:1.4.2",
                "web": {"replicas": 1, "memoryLimitMb": 512},
                "workers": [{"name": "events", "command": ["bin/events"], "replicas": 1, "memoryLimitMb": 256}],
            },
            "backup": {"bucketName": f"acme-{environment}-backups"},
            **extra,
        }
    )


def build(*environments: Settings) -> Plan:
    def declare() -> None:
        for settings in environments:
            AuditXEnvironment(f"audit-x-{settings.environment}", settings)

    return run_component(declare)


@pytest.fixture(scope="module")
def qa() -> Plan:
    """Two environments side by side in one program, qa and demo; the tests read qa's."""
    return build(settings_for("qa"), settings_for("demo"))


def test_the_environment_alone_wires_each_component_once(qa: Plan) -> None:
    assert children(qa, "audit-x-qa", of="audit-x:environment:Environment") == sorted(
        [
            ("pulumi:providers:docker", "audit-x-qa-docker"),
            ("pulumi:providers:aws", "audit-x-qa-aws"),
            ("audit-x:secrets:Secrets", "audit-x-qa-secrets"),
            ("audit-x:backup:BackupBucket", "audit-x-qa-backups"),
            ("audit-x:network:Networks", "audit-x-qa-networks"),
            ("audit-x:backup:PitrRepository", "audit-x-qa-pgbackrest"),
            ("audit-x:data:Postgres", "audit-x-qa-postgres"),
            ("audit-x:data:Redis", "audit-x-qa-redis"),
            ("audit-x:data:Redpanda", "audit-x-qa-redpanda"),
            ("audit-x:data:InfluxDb", "audit-x-qa-influxdb"),
            ("audit-x:observability:Logs", "audit-x-qa-logs"),
            ("audit-x:observability:Grafana", "audit-x-qa-grafana"),
            ("audit-x:backup:BackupRunner", "audit-x-qa-backup"),
            ("audit-x:app:App", "audit-x-qa-app"),
            ("audit-x:observability:ExternalWatcher", "audit-x-qa-watcher"),
            ("audit-x:platform:DockerApiProxy", "audit-x-qa-docker-api"),
            ("audit-x:observability:Collector", "audit-x-qa-collector"),
            ("audit-x:edge:Edge", "audit-x-qa-edge"),
            # Redis's retire job waits for the app, which waits for Redis: the environment's child.
            ("docker:index/container:Container", "audit-x-qa-redis-password-retire"),
        ]
    )


def test_every_resource_talks_to_the_environments_own_host_and_region(qa: Plan) -> None:
    docker_provider = next(r for r in qa.resources if r.name == "audit-x-qa-docker")
    assert docker_provider.inputs["host"] == "ssh://deploy@docker.qa.example.org"
    aws_provider = next(r for r in qa.resources if r.name == "audit-x-qa-aws")
    assert aws_provider.inputs["region"] == "eu-central-1"
    for resource in [r for r in qa.resources if "-qa-" in r.name]:
        if resource.type.startswith("docker:"):
            assert (resource.provider or "").startswith(docker_provider.urn), resource.name
        elif resource.type.startswith("aws:") and not resource.name.startswith("audit-x-qa-watcher"):
            # The watcher's alarms, topic and key are in us-east-1, behind a provider of its own.
            assert (resource.provider or "").startswith(aws_provider.urn), resource.name


def test_without_seed_or_pager_settings_there_is_no_seed_part_and_a_warning_that_nobody_is_paged(qa: Plan) -> None:
    types = {r.type for r in qa.resources}
    assert not types & {"audit-x:backup:StagingSeedSource", "audit-x:backup:StagingSeedReader"}
    assert sorted(qa.warnings) == [
        f"critical alerts of {environment} page nobody: no PagerDuty routing key is set. "
        "Set one with `pulumi config set --secret pagerdutyRoutingKey <key>` (docs/observability.md)."
        for environment in ("demo", "qa")
    ]


def test_two_environments_side_by_side_share_no_name(qa: Plan) -> None:
    assert {r.name for r in qa.resources if r.parent is None or r.parent == "audit-x-component-test"} == {
        "audit-x-qa",
        "audit-x-demo",
    }
    assert clashes(qa) == []
