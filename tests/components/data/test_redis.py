"""Redis built alone: its server, its password job, and two of them side by side."""

from __future__ import annotations

import pulumi

from components.data.redis import CONFIG_FILE, USERS_FILE, Redis
from components.lib import tokens
from components.settings import RedisSettings
from harness.mock_engine import Plan, run_component
from tests.helpers import component_context, data_network

SETTINGS = RedisSettings(memory_limit_mb=256, max_memory_mb=192)


def build(*names: str) -> Plan:
    def declare() -> None:
        ctx = component_context()
        network = data_network(ctx)
        for name in names:
            passwords = {"a": pulumi.Output.secret("s3cret-a"), "b": pulumi.Output.secret("s3cret-b")}
            Redis(name, SETTINGS, ctx=ctx, passwords=passwords, active="b", data_network=network)

    return run_component(declare)


def test_redis_alone_declares_its_volumes_image_job_and_server() -> None:
    plan = build("audit-x-test-redis")
    assert sorted((r.type, r.name) for r in plan.resources if r.parent == "audit-x-test-redis") == [
        (tokens.CONTAINER, "audit-x-test-redis"),
        (tokens.CONTAINER, "audit-x-test-redis-password"),
        (tokens.REMOTE_IMAGE, "audit-x-test-redis-image"),
        (tokens.VOLUME, "audit-x-test-redis-credentials"),
        (tokens.VOLUME, "audit-x-test-redis-data"),
    ]
    containers = {r.name: r for r in plan.of_type(tokens.CONTAINER)}
    server, job = containers["audit-x-test-redis"], containers["audit-x-test-redis-password"]
    config = {u["file"]: u["content"] for u in server.plain_inputs["uploads"]}[CONFIG_FILE]
    assert "maxmemory 192mb" in config.splitlines()
    assert f"include {USERS_FILE}" in config.splitlines()
    # The server's inputs carry no password at all; the job gets both, readable by root only.
    assert "s3cret" not in str(server.plain_inputs)
    uploads = {u["file"]: u for u in job.plain_inputs["uploads"]}
    assert {path: u["content"] for path, u in uploads.items()} == {
        "/run/secrets/password-a": "s3cret-a",
        "/run/secrets/password-b": "s3cret-b",
    }
    assert {u["permissions"] for u in uploads.values()} == {"0400"}
    assert {u["content"] for u in job.inputs["uploads"]} == {"[secret]"}  # masked in a plan
    assert job.urn in server.dependencies


def test_two_redis_components_do_not_clash() -> None:
    plan = build("audit-x-test-redis", "audit-x-test-cache")
    urns = [r.urn for r in plan.resources]
    assert len(urns) == len(set(urns))
    servers = sorted(r.inputs["name"] for r in plan.of_type(tokens.CONTAINER) if not r.inputs.get("attach"))
    volume_names = sorted(r.inputs["name"] for r in plan.of_type(tokens.VOLUME))
    assert servers == ["audit-x-test-cache", "audit-x-test-redis"]
    assert volume_names == [
        "audit-x-test-cache-credentials",
        "audit-x-test-cache-data",
        "audit-x-test-redis-credentials",
        "audit-x-test-redis-data",
    ]
