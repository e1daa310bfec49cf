"""InfluxDB built alone: set up on first start from its environment and two secret files, on the
data network only, and the endpoint its clients get."""

from __future__ import annotations

import pulumi

from components.data.influxdb import InfluxDb
from components.lib import tokens
from components.settings import InfluxDbSettings
from harness.mock_engine import Plan, mock_image_id, run_component
from tests.helpers import (
    children,
    clashes,
    component_context,
    data_network,
    declared,
    env,
    healthcheck_command,
    labels,
    network_names,
    upload,
    volumes,
)

SETTINGS = InfluxDbSettings(
    image="influxdb:2.7.11-alpine", org="acme", bucket="signals", retention_days=9, memory_limit_mb=640
)
PASSWORD_FILE = "/run/secrets/influxdb-admin-password"
TOKEN_FILE = "/run/secrets/influxdb-operator-token"


def build(*environments: str) -> Plan:
    """One InfluxDB per environment, `audit-x-<env>-influxdb`, on its environment's data network."""

    def declare() -> None:
        for environment in environments:
            ctx = component_context(environment)
            network = data_network(ctx)
            name = ctx.name("influxdb")
            influxdb = InfluxDb(
                name,
                SETTINGS,
                ctx=ctx,
                admin_password=pulumi.Output.secret(f"{name}-admin-secret"),
                operator_token=pulumi.Output.secret(f"{name}-operator-secret"),
                data_network=network,
            )
            endpoint = influxdb.endpoint(pulumi.Output.secret("client-token"))
            pulumi.export(f"{name}-endpoint", [endpoint.url, endpoint.org, endpoint.bucket])
            pulumi.export(f"{name}-token", endpoint.token)

    return run_component(declare)


def test_influxdb_alone_declares_its_volumes_image_and_server_on_the_data_network() -> None:
    plan = build("test")
    assert children(plan, "audit-x-test-influxdb") == [
        (tokens.CONTAINER, "audit-x-test-influxdb"),
        (tokens.REMOTE_IMAGE, "audit-x-test-influxdb-image"),
        (tokens.VOLUME, "audit-x-test-influxdb-config"),
        (tokens.VOLUME, "audit-x-test-influxdb-data"),
    ]
    server = declared(plan, tokens.CONTAINER, "audit-x-test-influxdb")
    assert server.inputs["image"] == mock_image_id("influxdb:2.7.11-alpine")
    assert server.inputs["networksAdvanced"] == [{"name": "audit-x-test-data", "aliases": ["influxdb"]}]
    assert server.inputs.get("ports") is None
    assert volumes(server) == {
        "/var/lib/influxdb2": "audit-x-test-influxdb-data",
        "/etc/influxdb2": "audit-x-test-influxdb-config",
    }
    assert (server.inputs["memory"], server.inputs["memorySwap"]) == (640, 640)
    assert (labels(server)["io.audit-x.service"], labels(server)["io.audit-x.role"]) == ("influxdb", "metrics")
    assert env(server) == {
        "DOCKER_INFLUXDB_INIT_MODE": "setup",
        "DOCKER_INFLUXDB_INIT_USERNAME": "admin",
        "DOCKER_INFLUXDB_INIT_PASSWORD_FILE": PASSWORD_FILE,
        "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE": TOKEN_FILE,
        "DOCKER_INFLUXDB_INIT_ORG": "acme",
        "DOCKER_INFLUXDB_INIT_BUCKET": "signals",
        "DOCKER_INFLUXDB_INIT_RETENTION": "9d",
        "INFLUXD_REPORTING_DISABLED": "true",
        "INFLUXD_LOG_LEVEL": "info",
    }
    # The health check asks the unauthenticated /health: no token on a command line.
    assert healthcheck_command(server) == (
        'wget -q -O- "http://127.0.0.1:${INFLUXDB_PORT:-8086}/health" | grep -Eq \'"status": ?"pass"\''
    )
    assert server.inputs["healthcheck"]["startPeriod"] == "1m0s"


def test_the_password_and_token_reach_influxdb_as_files_of_its_user_alone_masked() -> None:
    plan = build("test")
    server = declared(plan, tokens.CONTAINER, "audit-x-test-influxdb")
    for path, value in (
        (PASSWORD_FILE, "audit-x-test-influxdb-admin-secret"),
        (TOKEN_FILE, "audit-x-test-influxdb-operator-secret"),
    ):
        assert upload(server, path)["content"] == "[secret]"
        assert upload(server, path, plain=True) == {
            "file": path,
            "content": value,
            "permissions": "0400",
            "owner": "1000",
            "group": "1000",
        }
        # Nowhere else: not in its environment, command, labels or health check.
        assert value not in str({k: v for k, v in server.plain_inputs.items() if k != "uploads"})


def test_clients_get_its_url_org_bucket_and_the_token_they_hold() -> None:
    plan = build("test")
    assert plan.outputs["audit-x-test-influxdb-endpoint"] == ["http://influxdb:8086", "acme", "signals"]
    assert plan.outputs["audit-x-test-influxdb-token"] == "[secret]"
    assert plan.plain_outputs["audit-x-test-influxdb-token"] == "client-token"


def test_two_environments_influxdb_side_by_side_do_not_clash() -> None:
    plan = build("test", "qa")
    assert clashes(plan) == []
    assert sorted(r.inputs["name"] for r in plan.of_type(tokens.VOLUME)) == [
        "audit-x-qa-influxdb-config",
        "audit-x-qa-influxdb-data",
        "audit-x-test-influxdb-config",
        "audit-x-test-influxdb-data",
    ]
    assert network_names(declared(plan, tokens.CONTAINER, "audit-x-qa-influxdb")) == ["audit-x-qa-data"]
