"""A canary release as the program declares it: canary web containers beside the stable ones, the
edge's weighted split and header route, the edge's metrics, and what each step of a release does
to a running prod (the offline preview, under the providers' update rules)."""

from __future__ import annotations

import tomllib

import pytest

from components.lib.tokens import label
from components.platform.edge import CANARY_SERVICE, STABLE_SERVICE
from harness.mock_engine import Plan, run_program
from ops.preview import changed_config, preview
from tests.helpers import container, containers, edge_file, env, labels, routes

CANARY_IMAGE = "ghcr.io/audit-x/audit_x:1.5.0"


def with_canary(weight: int, stack: str = "prod") -> Plan:
    config = changed_config(stack, [f"app.canary.image={CANARY_IMAGE}", f"app.canary.weight={weight}"])
    return run_program(stack, config=config)


@pytest.fixture(scope="module")
def canary_plans() -> dict[int, Plan]:
    return {weight: with_canary(weight) for weight in (0, 5, 100)}


def test_canary_web_containers_run_the_new_image_beside_the_stable_ones(canary_plans: dict[int, Plan]) -> None:
    plan = canary_plans[5]
    canary = container(plan, "web", "canary", "0")
    assert labels(canary)[label("track")] == "canary"
    assert env(canary)["APP_RELEASE"] == "1.5.0"
    stable = [c for c in containers(plan) if c.name.startswith("audit-x-prod-web-") and "canary" not in c.name]
    assert len(stable) == 3 and all(env(c)["APP_RELEASE"] == "1.4.2" for c in stable)
    # The canary's migrations run before it starts (expand-only: docs/deploy.md).
    assert env(container(plan, "migrate"))["APP_RELEASE"] == "1.5.0"
    # The edge reaches each canary container by its own name, once it is healthy.
    job = container(plan, "edge-routes")
    assert canary.urn in job.dependencies


@pytest.mark.parametrize(
    ("weight", "split"),
    [(0, [(STABLE_SERVICE, 100)]), (5, [(STABLE_SERVICE, 95), (CANARY_SERVICE, 5)]), (100, [(CANARY_SERVICE, 100)])],
)
def test_the_edge_splits_by_weight_and_drops_a_side_of_weight_zero(
    canary_plans: dict[int, Plan], weight: int, split: list[tuple[str, int]]
) -> None:
    services = routes(canary_plans[weight])["http"]["services"]
    assert [(s["name"], s["weight"]) for s in services["web"]["weighted"]["services"]] == split
    assert services["web"]["weighted"]["healthCheck"] == {}  # a side with no ready server gets nothing
    canary_servers = [s["url"] for s in services[CANARY_SERVICE]["loadBalancer"]["servers"]]
    assert canary_servers == [f"http://{container(canary_plans[weight], 'web', 'canary', '0').inputs['name']}:3000"]
    assert services[CANARY_SERVICE]["loadBalancer"]["healthCheck"]["path"] == "/ready"


def test_a_request_with_the_canary_header_always_reaches_the_canary(canary_plans: dict[int, Plan]) -> None:
    for plan in canary_plans.values():
        router = routes(plan)["http"]["routers"]["app-canary"]
        assert router["rule"] == "Host(`audit-x.example.com`) && Header(`X-Canary`, `1`)"
        assert router["service"] == CANARY_SERVICE
        assert router["priority"] > len(routes(plan)["http"]["routers"]["app"]["rule"])
        assert router["middlewares"] == routes(plan)["http"]["routers"]["app"]["middlewares"]


def test_without_a_canary_there_is_no_canary_route_or_container(plans: dict[str, Plan]) -> None:
    plan = plans["prod"]
    assert "app-canary" not in routes(plan)["http"]["routers"]
    assert CANARY_SERVICE not in routes(plan)["http"]["services"]
    assert not [c for c in containers(plan) if "canary" in c.name]


def test_the_edge_exports_per_service_metrics_that_the_collector_scrapes(plans: dict[str, Plan]) -> None:
    static = edge_file(plans["prod"], "/etc/traefik/traefik.yml")
    assert static["metrics"]["prometheus"]["addServicesLabels"] is True
    assert static["entryPoints"]["metrics"] == {"address": ":8083"}
    telegraf = tomllib.loads(
        next(
            u["content"]
            for u in container(plans["prod"], "collector").plain_inputs["uploads"]
            if u["file"].endswith("telegraf.conf")
        )
    )
    edge = next(p for p in telegraf["inputs"]["prometheus"] if p["name_override"] == "traefik")
    assert edge["urls"] == ["http://edge:8083/metrics"]


CANARY_FROM = [f"app.canary.image={CANARY_IMAGE}"]


@pytest.mark.parametrize(("before", "after"), [(0, 5), (5, 25), (25, 50)])
def test_a_weight_step_touches_neither_the_edge_nor_any_web_container(before: int, after: int) -> None:
    result = preview("prod", [f"app.canary.weight={after}"], [*CANARY_FROM, f"app.canary.weight={before}"])
    touched = {step.resource.name for step in result.steps}
    assert touched == {"audit-x-prod-edge-routes"}  # the routes file, rewritten; Traefik reloads it
    assert not result.down


def test_starting_promoting_and_aborting_a_canary_take_nothing_down() -> None:
    start = preview("prod", [*CANARY_FROM, "app.canary.weight=0"])
    assert not start.down and "audit-x-prod-edge" not in {s.resource.name for s in start.steps}
    assert not [
        s for s in start.steps if s.resource.name.startswith("audit-x-prod-web-") and "canary" not in s.resource.name
    ]
    at_half = [*CANARY_FROM, "app.canary.weight=50"]
    promote = preview("prod", [f"app.image={CANARY_IMAGE}"], at_half, ["app.canary"])
    assert not promote.down
    names = [(s.op, s.resource.name) for s in promote.steps]
    # The canary goes last, after the new stable containers are healthy and the routes name them.
    assert names[-2:] == [("delete", "audit-x-prod-web-canary-0"), ("delete", "audit-x-prod-app-canary-image")]
    abort = preview("prod", [], at_half, ["app.canary"])
    assert not abort.down
    assert not [
        s for s in abort.steps if s.resource.name.startswith("audit-x-prod-web-") and "canary" not in s.resource.name
    ]


def test_a_canary_of_the_stable_image_is_refused() -> None:
    from components.settings import ConfigError, load_settings  # noqa: PLC0415

    config = changed_config("prod", ["app.canary.image=ghcr.io/audit-x/audit_x:1.4.2"])
    with pytest.raises(ConfigError, match="a canary must be another version"):
        load_settings(config)
