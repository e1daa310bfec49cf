"""The edge proxy and the health-gated rollout, as the program declares them."""

from __future__ import annotations

import json

import yaml

from components.app import release_suffix
from components.settings import load_settings
from tests.helpers import container, containers, network_names
from tools.mock_engine import Plan, load_stack_config, run_program


def edge_file(plan: Plan, path: str) -> dict:
    uploads = {u["file"]: u["content"] for u in container(plan, "edge").inputs["uploads"]}
    return yaml.safe_load(uploads[path])


def test_edge_routes_the_domain_to_every_web_slot_on_its_port(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    dynamic = edge_file(plan, "/etc/traefik/dynamic.yml")["http"]
    assert dynamic["routers"]["app"]["rule"] == f"Host(`{settings.domain}`)"
    assert dynamic["routers"]["app"]["tls"] == {"certResolver": "letsencrypt"}
    servers = [s["url"] for s in dynamic["services"]["web"]["loadBalancer"]["servers"]]
    assert servers == [f"http://web-{i}:{settings.app.web.port}" for i in range(settings.app.web.replicas)]
    # Every slot alias the edge names is carried by exactly one web container of the plan.
    for index in range(settings.app.web.replicas):
        web = container(plan, "web", str(index))
        aliases = next(n["aliases"] for n in web.inputs["networksAdvanced"] if n["name"].endswith("-app"))
        assert f"web-{index}" in aliases


def test_edge_sends_traffic_only_to_ready_containers(plan: Plan) -> None:
    balancer = edge_file(plan, "/etc/traefik/dynamic.yml")["http"]["services"]["web"]["loadBalancer"]
    assert balancer["healthCheck"] == {"path": "/ready", "interval": "5s", "timeout": "3s"}


def test_rate_limit_comes_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    limit = edge_file(plan, "/etc/traefik/dynamic.yml")["http"]["middlewares"]["rate-limit"]["rateLimit"]
    assert (limit["average"], limit["burst"]) == (settings.edge.rate_limit_average, settings.edge.rate_limit_burst)
    assert limit["sourceCriterion"] == {"ipStrategy": {"depth": 0}}


def test_rate_limit_follows_a_config_change() -> None:
    edge = json.loads(load_stack_config("staging")["audit-x:edge"]) | {"rateLimitAverage": 7, "rateLimitBurst": 9}
    plan = run_program("staging", overrides={"audit-x:edge": json.dumps(edge)})
    limit = edge_file(plan, "/etc/traefik/dynamic.yml")["http"]["middlewares"]["rate-limit"]["rateLimit"]
    assert (limit["average"], limit["burst"]) == (7, 9)


def test_edge_has_tls_security_headers_json_access_logs_and_no_docker_socket(plan: Plan, stack: str) -> None:
    static = edge_file(plan, "/etc/traefik/traefik.yml")
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]["to"] == "websecure"
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["email"] == "ops@audit-x.example.com"
    assert static["accessLog"]["format"] == "json"
    assert "docker" not in static["providers"]
    headers = edge_file(plan, "/etc/traefik/dynamic.yml")["http"]["middlewares"]["security-headers"]["headers"]
    assert headers["stsSeconds"] >= 31536000 and headers["contentTypeNosniff"] and headers["frameDeny"]
    edge = container(plan, "edge")
    assert network_names(edge) == [f"audit-x-{stack}-app"]
    assert not any("docker.sock" in str(v) for v in edge.inputs.get("volumes", []) + edge.inputs.get("mounts", []))


def test_web_containers_wait_for_health_and_are_replaced_new_before_old(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    suffix = release_suffix(settings.app.image)
    for index in range(settings.app.web.replicas):
        web = container(plan, "web", str(index))
        assert web.inputs["name"] == f"audit-x-{stack}-web-{index}-{suffix}"
        assert web.inputs["wait"] is True
        assert web.inputs["waitTimeout"] == settings.app.web.health_timeout_seconds
        assert web.delete_before_replace is False
        assert web.inputs["stopTimeout"] == settings.app.web.drain_seconds


def test_a_new_image_means_new_container_names_under_the_same_resources() -> None:
    app = json.loads(load_stack_config("prod")["audit-x:app"]) | {"image": "ghcr.io/audit-x/audit_x:1.5.0"}
    before = run_program("prod")
    after = run_program("prod", overrides={"audit-x:app": json.dumps(app)})
    old = {c.name: c.inputs["name"] for c in containers(before)}
    new = {c.name: c.inputs["name"] for c in containers(after)}
    assert old.keys() == new.keys()  # same logical resources: Pulumi replaces them, new first
    changed = {name for name in old if old[name] != new[name]}
    assert changed == {n for n in old if "-web-" in n or "-worker-" in n}
