"""The metrics collector: its rendered Telegraf config parses and has every input the alerts read,
it alone mounts the Docker socket (read-only), it joins the networks its targets are on, and
Redpanda is told to compute consumer lag as often as it is scraped.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
its networks, its config and secret files from stand-ins, a rolling replacement."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pulumi
import yaml

from components.lib import tokens
from components.lib.durations import parse_seconds
from components.lib.tokens import label
from components.observability.alerting import UNHEALTHY_AFTER_SECONDS
from components.observability.collector import PROBE_PATHS, Collector
from components.observability.watcher import Heartbeat
from components.platform.docker_api import ALLOWED_READS, CONFIG_TEMPLATE, DockerApiProxy
from components.settings import MonitoringSettings, Settings, load_settings
from harness.mock_engine import DeclaredResource, Plan, fake_secret, load_stack_config, mock_image_id, run_component
from tests.helpers import (
    children,
    component_context,
    container,
    containers,
    declared,
    env,
    influxdb_endpoint,
    labels,
    long_running,
    network_names,
    networks,
    upload,
    uploaded,
)

TELEGRAF_CONFIG = "/etc/telegraf/telegraf.conf"


def settings_of(stack: str) -> Settings:
    return load_settings(load_stack_config(stack))


def telegraf(plan: Plan) -> dict:
    return tomllib.loads(uploaded(container(plan, "collector"), TELEGRAF_CONFIG))


def test_collector_config_parses_and_collects_at_the_configured_pace(plan: Plan, stack: str) -> None:
    config = telegraf(plan)
    monitoring = settings_of(stack).monitoring
    agent = config["agent"]
    assert agent["interval"] == f"{monitoring.collection_interval_seconds}s"
    assert agent["flush_interval"] == f"{monitoring.flush_interval_seconds}s"
    assert (agent["collection_jitter"], agent["flush_jitter"]) == ("0s", "0s")
    assert config["global_tags"] == {"environment": stack}
    assert set(config["inputs"]) == {"docker", "http_response", "prometheus", "disk", "internal"}
    assert container(plan, "collector").inputs["command"] == ["telegraf", "--config", TELEGRAF_CONFIG]


def test_docker_input_reads_this_environments_containers_in_every_state(plan: Plan, stack: str) -> None:
    (docker,) = telegraf(plan)["inputs"]["docker"]
    assert docker["endpoint"] == "tcp://docker-api:2375"  # the read-only proxy, never the socket
    assert docker["container_name_include"] == [f"audit-x-{stack}-*"]
    # Stopped containers must still be reported, or a dead service would just vanish.
    assert {"running", "exited", "restarting", "dead"} <= set(docker["container_state_include"])
    assert docker["docker_label_include"] == ["io.audit-x.*"]
    assert "cpu" in docker["total_include"]


def test_every_web_slot_is_probed_on_live_ready_and_health(plan: Plan, stack: str) -> None:
    web = settings_of(stack).app.web
    probes = telegraf(plan)["inputs"]["http_response"]
    by_probe = {p["tags"]["probe"]: p for p in probes}
    assert set(by_probe) == {"live", "ready", "health"}
    for name, path in PROBE_PATHS.items():
        assert by_probe[name]["urls"] == [f"http://web-{i}:{web.port}{path}" for i in range(web.replicas)]
        assert by_probe[name]["follow_redirects"] is False
    # The names probed are aliases the web containers answer to on the app network.
    aliases = {
        alias
        for resource in containers(plan)
        if labels(resource)[label("role")] == "web"
        for network in resource.inputs["networksAdvanced"]
        if network["name"] == f"audit-x-{stack}-app"
        for alias in network.get("aliases", [])
    }
    assert {f"web-{i}" for i in range(web.replicas)} <= aliases


def test_redpanda_lag_is_scraped_and_switched_on_at_the_same_interval(plan: Plan, stack: str, tmp_path: Path) -> None:
    interval = settings_of(stack).monitoring.collection_interval_seconds
    scrape, edge = telegraf(plan)["inputs"]["prometheus"]
    assert edge["urls"] == ["http://edge:8083/metrics"] and edge["name_override"] == "traefik"
    assert scrape["urls"] == ["http://redpanda:9644/public_metrics"]
    assert scrape["fieldinclude"] == ["redpanda_kafka_consumer_group_*"]
    assert scrape["name_override"] == "redpanda"

    bootstrap = yaml.safe_load(uploaded(container(plan, "redpanda"), "/etc/redpanda/.bootstrap.yaml"))
    assert bootstrap == {
        "enable_consumer_group_metrics": ["group", "partition", "consumer_lag"],
        "consumer_group_lag_collection_interval_sec": interval,
    }
    # A cluster that already exists ignores the bootstrap file: the job sets the same properties.
    job = container(plan, "redpanda", "lag-metrics")
    assert uploaded(job, "/etc/redpanda/.bootstrap.yaml") == uploaded(
        container(plan, "redpanda"), "/etc/redpanda/.bootstrap.yaml"
    )
    assert container(plan, "redpanda").urn in job.dependencies
    calls = run_with_fake_rpk(job, tmp_path)
    assert calls == [
        [
            "cluster",
            "config",
            "set",
            "enable_consumer_group_metrics",
            '["group", "partition", "consumer_lag"]',
            "-X",
            "admin.hosts=redpanda:9644",
        ],
        [
            "cluster",
            "config",
            "set",
            "consumer_group_lag_collection_interval_sec",
            str(interval),
            "-X",
            "admin.hosts=redpanda:9644",
        ],
    ]


def run_with_fake_rpk(job: DeclaredResource, tmp_path: Path) -> list[list[str]]:
    """Run the job's script as its container would, with an `rpk` that records its arguments."""
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(uploaded(job, "/etc/redpanda/.bootstrap.yaml"))
    log = tmp_path / "rpk.calls"
    fake = tmp_path / "bin" / "rpk"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\037" "$@" >> {log}\necho >> {log}\n')
    fake.chmod(0o755)
    job_env = env(job) | {"PROPERTIES_FILE": str(bootstrap)}
    (script,) = job.inputs["command"]
    subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", **job_env},
        check=True,
        timeout=30,
    )
    return [line.rstrip("\x1f").split("\x1f") for line in log.read_text().splitlines()]


def test_disk_input_watches_the_filesystem_under_the_volumes(plan: Plan) -> None:
    (disk,) = telegraf(plan)["inputs"]["disk"]
    assert disk["mount_points"] == ["/"]


def test_outputs_write_to_influxdb_with_a_token_from_its_secret_file(plan: Plan, stack: str) -> None:
    settings = settings_of(stack)
    outputs = telegraf(plan)["outputs"]
    (influx,) = outputs["influxdb_v2"]
    assert influx["urls"] == ["http://influxdb:8086"]
    # A reference into Telegraf's Docker secret store, which reads /run/secrets/<key>.
    assert influx["token"] == "@{docker_secretstore:influxdb_token}"
    assert telegraf(plan)["secretstores"] == {"docker": [{"id": "docker_secretstore"}]}
    assert (influx["organization"], influx["bucket"]) == (settings.influxdb.org, settings.influxdb.bucket)
    collector = container(plan, "collector")
    token = {u["file"]: u for u in collector.plain_inputs["uploads"]}["/run/secrets/influxdb_token"]
    assert token["content"] == fake_secret(f"audit-x-{stack}-influxdb-operator-token")
    assert (token["permissions"], token["owner"]) == ("0400", "999")
    assert collector.inputs["user"] == "999:999"
    assert not any("TOKEN" in name for name in env(collector))
    (health,) = outputs["health"]
    assert health["namepass"] == ["docker"]
    assert health["contains"] == [{"field": "n_containers"}]
    assert parse_seconds(health["max_time_between_metrics"]) >= 2 * settings.monitoring.flush_interval_seconds
    assert "8080" in container(plan, "collector").inputs["healthcheck"]["tests"][1]


def test_only_the_docker_api_proxy_mounts_the_socket_and_it_lets_through_reads_only(plan: Plan, stack: str) -> None:
    mounting = {
        resource.name: mount
        for resource in containers(plan)
        for mount in resource.inputs.get("volumes", [])
        if mount.get("hostPath") in ("/var/run/docker.sock", "/run/docker.sock", "/var/run", "/run")
    }
    assert set(mounting) == {f"audit-x-{stack}-docker-api"}
    assert mounting[f"audit-x-{stack}-docker-api"]["readOnly"] is True
    proxy = container(plan, "docker-api")
    config = uploaded(proxy, CONFIG_TEMPLATE)
    rules = [line.split("#")[0].strip() for line in config.splitlines() if line.strip().startswith("http-request")]
    assert rules[0] == "http-request deny unless METH_GET" and rules[-1] == "http-request deny"
    assert len(rules) == 2 + len(ALLOWED_READS)


def test_only_the_collector_reaches_the_docker_api(plan: Plan, stack: str) -> None:
    network = f"audit-x-{stack}-docker-api"
    assert sorted(c.name for c in containers(plan) if network in network_names(c)) == [
        f"audit-x-{stack}-collector",
        f"audit-x-{stack}-docker-api",
    ]
    (docker_api_network,) = [n for n in plan.of_type(tokens.NETWORK) if n.name == network]
    assert docker_api_network.inputs["internal"] is True


def test_collector_joins_its_three_networks_only(plan: Plan, stack: str) -> None:
    assert network_names(container(plan, "collector")) == [
        f"audit-x-{stack}-data",
        f"audit-x-{stack}-app",
        f"audit-x-{stack}-docker-api",
    ]
    assert container(plan, "collector").inputs.get("ports") is None


def test_containers_are_labelled_service_or_job_for_the_alerts(plan: Plan) -> None:
    for resource in containers(plan):
        expected = "job" if resource.inputs.get("attach") else "service"
        assert labels(resource)[label("lifecycle")] == expected, resource.name


def test_every_health_check_reports_within_the_unhealthy_alerts_budget(plan: Plan) -> None:
    worst = 0
    for resource in long_running(plan):
        check = resource.inputs["healthcheck"]
        worst = max(worst, check["retries"] * (parse_seconds(check["interval"]) + parse_seconds(check["timeout"])))
    assert worst <= UNHEALTHY_AFTER_SECONDS
    # The budget is the real worst case, not a number picked to pass.
    assert worst == UNHEALTHY_AFTER_SECONDS


# --- built alone -------------------------------------------------------------------------------

MONITORING = MonitoringSettings(
    collector_image="telegraf:1.36.3-alpine",
    collector_memory_limit_mb=160,
    collection_interval_seconds=15,
    flush_interval_seconds=12,
    probe_timeout_seconds=4,
)
WEB_URLS = ["http://web-0:3100", "http://web-1:3100"]
HEARTBEAT_CREDENTIALS = "[heartbeat]\naws_access_key_id = AKIAHEARTBEAT\naws_secret_access_key = heartbeat-value\n"
COLLECTOR_USER = {"permissions": "0400", "owner": "999", "group": "999"}


def build_collector(token: str = "influxdb-token-value") -> Plan:
    def declare() -> None:
        ctx = component_context()
        Collector(
            "audit-x-test-collector",
            MONITORING,
            ctx=ctx,
            web_urls=WEB_URLS,
            influxdb=influxdb_endpoint(token),
            docker_api=DockerApiProxy(ctx.name("docker-api"), "ghcr.io/tecnativa/docker-socket-proxy:v0.4.0", ctx=ctx),
            heartbeat=Heartbeat(
                credentials=pulumi.Output.secret(HEARTBEAT_CREDENTIALS), namespace="audit-x/test", interval_seconds=20
            ),
            networks=networks(ctx),
        )

    return run_component(declare)


def collector_of(plan: Plan) -> DeclaredResource:
    return declared(plan, tokens.CONTAINER, "audit-x-test-collector")


def test_collector_alone_joins_its_three_networks_as_an_unprivileged_user_after_the_docker_api() -> None:
    plan = build_collector()
    assert children(plan, "audit-x-test-collector") == [
        (tokens.CONTAINER, "audit-x-test-collector"),
        (tokens.REMOTE_IMAGE, "audit-x-test-collector-image"),
    ]
    collector = collector_of(plan)
    assert collector.inputs["image"] == mock_image_id("telegraf:1.36.3-alpine")
    assert network_names(collector) == ["audit-x-test-data", "audit-x-test-app", "audit-x-test-docker-api"]
    assert collector.inputs["user"] == "999:999"
    assert collector.inputs["command"] == ["telegraf", "--config", TELEGRAF_CONFIG]
    assert collector.inputs["memory"] == 160
    assert "volumes" not in collector.inputs  # no socket, no volume: the Docker API through its proxy
    assert declared(plan, tokens.CONTAINER, "audit-x-test-docker-api").urn in collector.dependencies
    assert collector.inputs["healthcheck"]["tests"] == ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"]


def test_telegraf_reads_the_endpoint_heartbeat_and_web_urls_it_is_given() -> None:
    config = tomllib.loads(upload(collector_of(build_collector()), TELEGRAF_CONFIG)["content"])
    assert (config["agent"]["interval"], config["agent"]["flush_interval"]) == ("15s", "12s")
    assert config["global_tags"] == {"environment": "test"}
    (influxdb,) = config["outputs"]["influxdb_v2"]
    assert {k: influxdb[k] for k in ("urls", "organization", "bucket", "token")} == {
        "urls": ["http://metrics.test:8086"],
        "organization": "test-org",
        "bucket": "test-metrics",
        "token": "@{docker_secretstore:influxdb_token}",
    }
    (cloudwatch,) = config["outputs"]["cloudwatch"]
    assert {k: cloudwatch[k] for k in ("region", "namespace", "shared_credential_file", "profile")} == {
        "region": "us-east-1",
        "namespace": "audit-x/test",
        "shared_credential_file": "/run/secrets/aws-heartbeat-credentials",
        "profile": "heartbeat",
    }
    assert config["inputs"]["internal"][0]["interval"] == "20s"
    (docker_input,) = config["inputs"]["docker"]
    assert (docker_input["endpoint"], docker_input["container_name_include"]) == (
        "tcp://docker-api:2375",
        ["audit-x-test-*"],
    )
    probes = {p["tags"]["probe"]: p for p in config["inputs"]["http_response"]}
    assert {name: p["urls"] for name, p in probes.items()} == {
        "live": ["http://web-0:3100/live", "http://web-1:3100/live"],
        "ready": ["http://web-0:3100/ready", "http://web-1:3100/ready"],
        "health": ["http://web-0:3100/health", "http://web-1:3100/health"],
    }
    assert {p["response_timeout"] for p in probes.values()} == {"4s"}


def test_the_token_and_heartbeat_credentials_are_masked_files_of_the_collectors_user() -> None:
    collector = collector_of(build_collector())
    for path, value in (
        ("/run/secrets/influxdb_token", "influxdb-token-value"),
        ("/run/secrets/aws-heartbeat-credentials", HEARTBEAT_CREDENTIALS),
    ):
        assert upload(collector, path)["content"] == "[secret]"
        assert upload(collector, path, plain=True) == {"file": path, "content": value, **COLLECTOR_USER}
    assert "influxdb-token-value" not in upload(collector, TELEGRAF_CONFIG)["content"]
    assert "heartbeat-value" not in str(collector.plain_inputs.get("envs"))


def test_a_new_token_is_a_new_collector_container_started_before_the_old_one_stops() -> None:
    before, after = collector_of(build_collector("token-a")), collector_of(build_collector("token-b"))
    assert before.name == after.name == "audit-x-test-collector"
    assert re.fullmatch(r"audit-x-test-collector-[0-9a-f]{8}", before.inputs["name"])
    assert before.inputs["name"] != after.inputs["name"]
    assert (after.delete_before_replace_defined, after.delete_before_replace) == (True, False)
