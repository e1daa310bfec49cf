"""Centralised logs: Loki's config has what Loki 3 needs to start with retention on; Alloy's
pipeline is wired end to end, labels by environment/service/role/level, keeps request_id in
the line, and never touches the Docker socket.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
Loki and Alloy, two environments side by side."""

from __future__ import annotations

import re

import yaml

from components.lib import tokens
from components.observability.logs import Logs, alloy_config
from components.settings import LogsSettings, load_settings
from harness.mock_engine import Plan, load_stack_config, mock_image_id, run_component
from tests.helpers import (
    children,
    clashes,
    component_context,
    container,
    containers,
    data_network,
    declared,
    healthcheck_command,
    network_names,
    upload,
    uploaded,
    volumes,
)


def test_loki_config_is_loki_3_with_retention(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    config = yaml.safe_load(uploaded(container(plan, "loki"), "/etc/loki/audit-x.yaml"))
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    assert schema["index"]["period"] == "24h"  # retention needs 24h index tables
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["limits_config"]["retention_period"] == f"{settings.logs.retention_days * 24}h"
    assert config["common"]["replication_factor"] == 1
    assert config["auth_enabled"] is False
    assert container(plan, "loki").inputs["command"] == ["-config.file=/etc/loki/audit-x.yaml"]


def declared_components(config: str) -> set[str]:
    return {f"{kind}.{label}" for kind, label in re.findall(r'^([a-z_.]+) "([a-z_]+)" \{', config, re.MULTILINE)}


def test_alloy_pipeline_is_wired_end_to_end(plan: Plan, stack: str) -> None:
    config = uploaded(container(plan, "alloy"), "/etc/alloy/config.alloy")
    assert config.count("{") == config.count("}")
    declared = declared_components(config)
    assert declared == {
        "local.file_match.containers",
        "loki.source.file.containers",
        "loki.process.containers",
        "loki.write.local",
    }
    for reference in re.findall(r"\b((?:loki|local)\.[a-z_]+\.[a-z_]+)\.(?:receiver|targets)\b", config):
        assert reference in declared, reference
    assert 'url = "http://loki:3100/loki/api/v1/push"' in config
    assert f'selector = "{{environment!=\\"{stack}\\"}}"' in config


def test_logs_are_labelled_by_environment_service_role_and_level_not_request_id() -> None:
    config = alloy_config("prod")
    label_blocks = re.findall(r"stage\.labels \{\s*values = \{([^}]*)\}", config)
    labels = {name.strip() for block in label_blocks for name in re.findall(r"(\w+) =", block)}
    assert labels == {"environment", "service", "role", "stream", "level"}
    assert "request_id" not in labels
    assert 'environment = "attrs.\\"io.audit-x.environment\\""' in config


def test_every_container_writes_its_labels_into_its_log_lines(plan: Plan) -> None:
    for resource in containers(plan):
        assert resource.inputs["logOpts"]["labels"] == "io.audit-x.environment,io.audit-x.service,io.audit-x.role"


def test_alloy_reads_the_log_files_read_only_and_not_the_docker_socket(plan: Plan, stack: str) -> None:
    alloy = container(plan, "alloy")
    mounts = alloy.inputs["volumes"]
    host = [m for m in mounts if m.get("hostPath")]
    assert host == [
        {"hostPath": "/var/lib/docker/containers", "containerPath": "/var/lib/docker/containers", "readOnly": True}
    ]
    assert not any("docker.sock" in str(m) for m in mounts)
    assert network_names(alloy) == [f"audit-x-{stack}-data"]
    assert network_names(container(plan, "loki")) == [f"audit-x-{stack}-data"]


def test_grafana_has_the_loki_datasource_with_a_fixed_uid(plan: Plan) -> None:
    grafana = container(plan, "grafana")
    datasources = yaml.safe_load(uploaded(grafana, "/etc/grafana/provisioning/datasources/audit-x.yaml"))
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert by_uid["audit-x-loki"]["type"] == "loki"
    assert by_uid["audit-x-loki"]["url"] == "http://loki:3100"
    assert by_uid["audit-x-influxdb"]["type"] == "influxdb"


# --- built alone -------------------------------------------------------------------------------

LOGS_SETTINGS = LogsSettings(
    loki_image="grafana/loki:3.4.2",
    alloy_image="grafana/alloy:v1.7.5",
    retention_days=5,
    loki_memory_limit_mb=300,
    alloy_memory_limit_mb=100,
)


def build_logs(*environments: str) -> Plan:
    def declare() -> None:
        for environment in environments:
            ctx = component_context(environment)
            Logs(ctx.name("logs"), LOGS_SETTINGS, ctx=ctx, data_network=data_network(ctx))

    return run_component(declare)


def test_logs_alone_declare_loki_and_alloy_on_the_data_network() -> None:
    plan = build_logs("test")
    assert children(plan, "audit-x-test-logs") == [
        (tokens.CONTAINER, "audit-x-test-alloy"),
        (tokens.CONTAINER, "audit-x-test-loki"),
        (tokens.REMOTE_IMAGE, "audit-x-test-alloy-image"),
        (tokens.REMOTE_IMAGE, "audit-x-test-loki-image"),
        (tokens.VOLUME, "audit-x-test-alloy-positions"),
        (tokens.VOLUME, "audit-x-test-loki-data"),
    ]
    loki = declared(plan, tokens.CONTAINER, "audit-x-test-loki")
    assert loki.inputs["image"] == mock_image_id("grafana/loki:3.4.2")
    assert loki.inputs["networksAdvanced"] == [{"name": "audit-x-test-data", "aliases": ["loki"]}]
    assert loki.inputs["command"] == ["-config.file=/etc/loki/audit-x.yaml"]
    assert volumes(loki) == {"/loki": "audit-x-test-loki-data"}
    assert loki.inputs["memory"] == 300
    config = yaml.safe_load(upload(loki, "/etc/loki/audit-x.yaml")["content"])
    assert config["limits_config"]["retention_period"] == "120h"
    assert config["compactor"]["retention_enabled"] is True
    assert healthcheck_command(loki) == "wget -q -O- http://127.0.0.1:3100/ready | grep -q ready"

    alloy = declared(plan, tokens.CONTAINER, "audit-x-test-alloy")
    assert alloy.inputs["image"] == mock_image_id("grafana/alloy:v1.7.5")
    assert network_names(alloy) == ["audit-x-test-data"]
    assert loki.urn in alloy.dependencies
    assert alloy.inputs["memory"] == 100
    # The host's json-file logs, read-only; no other host path (no Docker socket).
    assert [v for v in alloy.inputs["volumes"] if "hostPath" in v] == [
        {"hostPath": "/var/lib/docker/containers", "containerPath": "/var/lib/docker/containers", "readOnly": True}
    ]
    assert volumes(alloy) == {"/var/lib/alloy/data": "audit-x-test-alloy-positions"}
    assert alloy.inputs["command"] == [
        "run",
        "--server.http.listen-addr=0.0.0.0:12345",
        "--storage.path=/var/lib/alloy/data",
        "/etc/alloy/config.alloy",
    ]


def test_two_environments_logs_side_by_side_each_keep_only_their_own_lines() -> None:
    plan = build_logs("test", "qa")
    assert clashes(plan) == []
    for environment, other in (("test", "qa"), ("qa", "test")):
        pipeline = upload(declared(plan, tokens.CONTAINER, f"audit-x-{environment}-alloy"), "/etc/alloy/config.alloy")
        assert f'selector = "{{environment!=\\"{environment}\\"}}"' in pipeline["content"]
        assert f'environment!=\\"{other}\\"' not in pipeline["content"]
        assert 'url = "http://loki:3100/loki/api/v1/push"' in pipeline["content"]
