"""Redis built alone: its container, config and secret file, and two of them side by side."""

from __future__ import annotations

import pulumi

from components.data.redis import AUTH_FILE, CONFIG_FILE, Redis
from components.settings import RedisSettings
from tests.helpers import CONTAINER, VOLUME, component_context, data_network
from tools.mock_engine import Plan, run_component

SETTINGS = RedisSettings(memory_limit_mb=256, max_memory_mb=192)


def build(*names: str) -> Plan:
    def declare() -> None:
        ctx = component_context()
        network = data_network(ctx)
        for name in names:
            Redis(name, SETTINGS, ctx=ctx, password=pulumi.Output.secret("s3cret"), data_network=network)

    return run_component(declare)


def test_redis_alone_declares_its_volume_image_and_container() -> None:
    plan = build("audit-x-test-redis")
    assert sorted((r.type, r.name) for r in plan.resources if r.parent == "audit-x-test-redis") == [
        (CONTAINER, "audit-x-test-redis"),
        ("docker:index/remoteImage:RemoteImage", "audit-x-test-redis-image"),
        (VOLUME, "audit-x-test-redis-data"),
    ]
    (container,) = plan.of_type(CONTAINER)
    uploads = {u["file"]: u for u in container.plain_inputs["uploads"]}
    assert "maxmemory 192mb" in uploads[CONFIG_FILE]["content"].splitlines()
    assert uploads[AUTH_FILE]["content"] == "requirepass s3cret\n"
    assert uploads[AUTH_FILE]["permissions"] == "0400"
    # Masked in what a plan shows.
    assert {u["file"]: u["content"] for u in container.inputs["uploads"]}[AUTH_FILE] == "[secret]"


def test_two_redis_components_do_not_clash() -> None:
    plan = build("audit-x-test-redis", "audit-x-test-cache")
    urns = [r.urn for r in plan.resources]
    assert len(urns) == len(set(urns))
    container_names = sorted(r.inputs["name"] for r in plan.of_type(CONTAINER))
    volume_names = sorted(r.inputs["name"] for r in plan.of_type(VOLUME))
    assert container_names == ["audit-x-test-cache", "audit-x-test-redis"]
    assert volume_names == ["audit-x-test-cache-data", "audit-x-test-redis-data"]
