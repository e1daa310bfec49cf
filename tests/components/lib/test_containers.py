"""Every container follows the environment's policy; data services stay on their private network."""

from __future__ import annotations

import re

import pytest

from components.lib import tokens
from components.lib.tokens import label
from components.settings import load_settings
from harness.mock_engine import Plan, fake_secret, load_stack_config
from tests.helpers import (
    DATA_SERVICES,
    container,
    containers,
    env,
    env_name,
    healthcheck_command,
    image_reference,
    labels,
    long_running,
    network_names,
    uploaded,
)

PINNED = re.compile(r"^[a-z0-9./_-]+(:[A-Za-z0-9_.-]+)?(@sha256:[0-9a-f]{64})?$")


def test_plan_has_every_service(plan: Plan) -> None:
    names = {c.name for c in containers(plan)}
    env_ = env_name(plan)
    for service in (*DATA_SERVICES, "grafana", "migrate", "web-0", "worker-sidekiq-0", "worker-karafka-0"):
        assert f"audit-x-{env_}-{service}" in names


def test_every_image_is_pinned_and_never_latest(plan: Plan) -> None:
    for resource in containers(plan):
        reference = image_reference(plan, resource)
        assert PINNED.match(reference), reference
        tag = reference.split("@")[0].rsplit(":", 1)
        assert len(tag) == 2 or "@sha256:" in reference, f"{resource.name} runs an untagged image {reference}"
        assert tag[-1] != "latest", f"{resource.name} runs {reference}"


def built_from(plan: Plan, image_name: str) -> str:
    (built,) = [i for i in plan.of_type(tokens.BUILT_IMAGE) if i.inputs["imageName"] == image_name]
    return built.inputs["build"]["args"]["POSTGRES_IMAGE"]


def test_images_are_the_configured_ones(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    expected = {
        "postgres": settings.postgres.image,
        "redis": settings.redis.image,
        "redpanda": settings.redpanda.image,
        "influxdb": settings.influxdb.image,
        "grafana": settings.grafana.image,
        "web-0": settings.app.image,
        "migrate": settings.app.image,
    }
    for service, image in expected.items():
        reference = image_reference(plan, container(plan, service))
        # PostgreSQL runs the configured image plus pgBackRest, built on the host FROM it.
        assert reference == image or (service == "postgres" and built_from(plan, reference) == image)


def test_long_running_containers_have_the_full_policy(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    for resource in long_running(plan):
        inputs = resource.inputs
        assert inputs["restart"] == "unless-stopped", resource.name
        assert inputs["healthcheck"]["tests"][0] == "CMD-SHELL", resource.name
        assert inputs["healthcheck"]["retries"] >= 3, resource.name
        assert inputs["wait"] is True, f"{resource.name}: pulumi up must wait for health"
        assert inputs["memory"] >= 128, resource.name
        assert inputs["memorySwap"] == inputs["memory"], resource.name
        assert inputs["logDriver"] == "json-file"
        assert inputs["logOpts"] == {
            "max-size": f"{settings.log_rotation.max_size_mb}m",
            "max-file": str(settings.log_rotation.max_files),
            "labels": "io.audit-x.environment,io.audit-x.service,io.audit-x.role",
        }
        assert "no-new-privileges:true" in inputs["securityOpts"]
        assert not inputs.get("privileged")


def test_labels_name_environment_service_and_role(plan: Plan) -> None:
    for resource in containers(plan):
        found = labels(resource)
        assert found[label("environment")] == env_name(plan)
        assert found[label("project")] == "audit-x"
        assert found[label("service")]
        assert found[label("role")]
    assert labels(container(plan, "web-0"))[label("role")] == "web"
    assert labels(container(plan, "worker-sidekiq-0"))[label("role")] == "sidekiq"
    assert labels(container(plan, "postgres"))[label("service")] == "postgres"


def test_memory_limits_come_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    assert container(plan, "postgres").inputs["memory"] == settings.postgres.memory_limit_mb
    assert container(plan, "redis").inputs["memory"] == settings.redis.memory_limit_mb
    assert container(plan, "redpanda").inputs["memory"] == settings.redpanda.memory_limit_mb
    assert container(plan, "web-0").inputs["memory"] == settings.app.web.memory_limit_mb


def test_only_the_edge_publishes_host_ports_and_only_80_and_443(plan: Plan) -> None:
    publishing = {c.name: c.inputs["ports"] for c in containers(plan) if c.inputs.get("ports")}
    assert publishing == {
        f"audit-x-{env_name(plan)}-edge": [
            {"internal": 80, "external": 80, "protocol": "tcp"},
            {"internal": 443, "external": 443, "protocol": "tcp"},
        ]
    }
    for resource in containers(plan):
        assert not resource.inputs.get("publishAllPorts"), resource.name


def test_data_network_is_internal_and_app_network_is_not(plan: Plan) -> None:
    networks = {n.inputs["name"]: n.inputs for n in plan.of_type(tokens.NETWORK)}
    assert networks[f"audit-x-{env_name(plan)}-data"]["internal"] is True
    assert networks[f"audit-x-{env_name(plan)}-app"]["internal"] is False


def test_data_services_join_only_the_data_network(plan: Plan) -> None:
    data = f"audit-x-{env_name(plan)}-data"
    for service in DATA_SERVICES:
        assert network_names(container(plan, service)) == [data], service


def test_app_roles_and_grafana_join_both_networks(plan: Plan) -> None:
    both = {f"audit-x-{env_name(plan)}-data", f"audit-x-{env_name(plan)}-app"}
    for name in ("web-0", "worker-sidekiq-0", "migrate", "grafana"):
        assert set(network_names(container(plan, name))) == both, name


def test_every_service_joins_exactly_the_networks_it_needs(plan: Plan) -> None:
    """The whole map, by service: a new container must be added here, with its reason."""
    expected = {
        **{service: {"data"} for service in DATA_SERVICES},
        "loki": {"data"},
        "alloy": {"data"},  # ships to Loki; reads log files, needs nothing outside
        "app": {"data", "app"},  # every app role and job
        "grafana": {"data", "app"},  # reads InfluxDB/Loki; sends notifications out
        "collector": {"data", "app", "docker-api"},  # InfluxDB, Redpanda; the web slots; the Docker API
        "docker-api": {"docker-api"},  # the socket's only holder: reached by the collector alone
        "backup": {"data", "app"},  # PostgreSQL/InfluxDB; uploads to S3
        "edge": {"app"},  # the internet in front, the web slots behind
    }
    env = env_name(plan)
    services = {c.name for c in long_running(plan)}
    for resource in containers(plan):
        service = labels(resource)[label("service")]
        joined = {name.removeprefix(f"audit-x-{env}-") for name in network_names(resource)}
        assert service in expected, f"{resource.name}: add service {service!r} to this map"
        if resource.name in services:
            assert joined == expected[service], resource.name
        else:  # a one-shot job of the service: never more than the service itself
            assert joined <= expected[service], resource.name


def test_stateful_data_lives_in_named_volumes(plan: Plan) -> None:
    volumes = {v.inputs["name"] for v in plan.of_type(tokens.VOLUME)}
    mounts = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        "redpanda": "/var/lib/redpanda/data",
        "influxdb": "/var/lib/influxdb2",
        "grafana": "/var/lib/grafana",
    }
    for service, path in mounts.items():
        mounted = {v["containerPath"]: v["volumeName"] for v in container(plan, service).inputs["volumes"]}
        assert mounted[path] == f"audit-x-{env_name(plan)}-{service}-data"
        assert mounted[path] in volumes


def test_postgres_uses_scram_a_password_file_and_config_memory(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    postgres = container(plan, "postgres")
    variables = env(postgres)
    assert variables["POSTGRES_DB"] == f"audit_x_{stack}"
    assert variables["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert variables["POSTGRES_PASSWORD_FILE"] == "/var/lib/audit-x-credentials/postgres-password"
    assert "POSTGRES_PASSWORD" not in variables
    command = postgres.inputs["command"]
    assert "password_encryption=scram-sha-256" in command
    assert f"shared_buffers={settings.postgres.shared_buffers_mb}MB" in command
    assert f"max_connections={settings.postgres.max_connections}" in command
    # The password job writes the password file: no restart to rotate. The only uploads are
    # pgBackRest's two files, which carry no PostgreSQL password.
    assert sorted(u["file"] for u in postgres.inputs["uploads"]) == [
        "/etc/pgbackrest/pgbackrest.conf",
        "/run/secrets/pgbackrest/secrets.conf",
    ]
    # The password reaches the job, as a secret file.
    job = container(plan, "postgres-password")
    upload = job.inputs["uploads"][0]
    assert (upload["file"], upload["permissions"], upload["content"]) == (
        "/run/secrets/postgres-password",
        "0400",
        "[secret]",
    )
    mounts = {v["containerPath"]: v["volumeName"] for v in job.inputs["volumes"]}
    server_mounts = {v["containerPath"]: v["volumeName"] for v in postgres.inputs["volumes"]}
    # The job shares the server's volumes, but pgBackRest's queue, which is the server's alone.
    assert mounts == {path: volume for path, volume in server_mounts.items() if path != "/var/spool/pgbackrest"}
    assert job.urn in postgres.dependencies


def test_redis_requires_a_password_and_persists_append_only(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    redis = container(plan, "redis")
    files = {u["file"]: u for u in redis.plain_inputs["uploads"]}
    conf = files["/usr/local/etc/redis/redis.conf"]["content"]
    assert "appendonly yes" in conf.splitlines()
    assert "maxmemory-policy noeviction" in conf.splitlines()
    assert f"maxmemory {settings.redis.max_memory_mb}mb" in conf.splitlines()
    # The passwords: a users file on the credentials volume, written by the password job, which
    # gets the environment's two Redis passwords (masked in the plan).
    assert "include /var/lib/audit-x-credentials/users.conf" in conf.splitlines()
    job = container(plan, "redis-password")
    uploads = {u["file"]: u["content"] for u in job.plain_inputs["uploads"]}
    assert uploads == {
        "/run/secrets/password-a": fake_secret(f"audit-x-{stack}-redis-password"),
        "/run/secrets/password-b": fake_secret(f"audit-x-{stack}-redis-password-b/-1"),
    }
    assert {u["content"] for u in job.inputs["uploads"]} == {"[secret]"}


def test_redpanda_memory_and_cores_come_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    command = container(plan, "redpanda").inputs["command"]
    assert f"--smp={settings.redpanda.cores}" in command
    assert f"--memory={settings.redpanda.memory_mb}M" in command
    assert "--advertise-kafka-addr=internal://redpanda:9092" in command


def test_influxdb_is_set_up_on_first_start(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    variables = env(container(plan, "influxdb"))
    assert variables["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert variables["DOCKER_INFLUXDB_INIT_ORG"] == settings.influxdb.org
    assert variables["DOCKER_INFLUXDB_INIT_BUCKET"] == settings.influxdb.bucket
    assert variables["DOCKER_INFLUXDB_INIT_RETENTION"] == f"{settings.influxdb.retention_days}d"
    assert variables["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE"] == "/run/secrets/influxdb-operator-token"


def test_grafana_has_no_anonymous_access_and_a_provisioned_datasource(plan: Plan) -> None:
    grafana = container(plan, "grafana")
    variables = env(grafana)
    assert variables["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert variables["GF_USERS_ALLOW_SIGN_UP"] == "false"
    # The file the admin-password job writes on the data volume: no password in the server's inputs.
    assert (
        variables["GF_SECURITY_ADMIN_PASSWORD__FILE"] == env(container(plan, "grafana-admin-password"))["PASSWORD_FILE"]
    )
    assert not any(u["file"].endswith("admin-password") for u in grafana.inputs["uploads"])
    assert not any("TOKEN" in name for name in variables)
    datasources = uploaded(grafana, "/etc/grafana/provisioning/datasources/audit-x.yaml")
    assert "uid: audit-x-influxdb" in datasources
    assert "url: http://influxdb:8086" in datasources
    # The token: read from its secret file when Grafana provisions, never in its environment.
    assert "token: $__file{/run/secrets/influxdb-token}" in datasources
    assert uploaded(grafana, "/run/secrets/influxdb-token") == "[secret]"


@pytest.mark.parametrize(
    ("service", "fragment"),
    [
        ("postgres", "psql --host=127.0.0.1"),
        ("redis", "ping | grep -qx PONG"),
        ("redpanda", "rpk cluster health"),
        ("influxdb", "/health"),
        ("grafana", "/api/health"),
        ("web-0", "http://127.0.0.1:3000/live"),
        ("worker-sidekiq-0", "/tmp/audit-x-heartbeat"),
    ],
)
def test_each_service_has_its_own_probe(plan: Plan, service: str, fragment: str) -> None:
    assert fragment in healthcheck_command(container(plan, service))
