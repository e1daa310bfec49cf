"""The edge proxy and the health-gated rollout, as the program declares them.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
the edge and its routes job, in front of stand-in web containers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pulumi_docker as docker
import yaml

from components.lib import tokens
from components.platform.edge import NEW_ROUTES_FILE, ROUTES_DIR, Edge
from components.settings import EdgeSettings, load_settings
from harness.mock_engine import Plan, load_stack_config, run_component, run_program
from tests.helpers import (
    children,
    component_context,
    container,
    containers,
    declared,
    edge_file,
    env,
    healthcheck_command,
    network_names,
    networks,
    routes,
    upload,
    uploaded,
    volumes,
)


def test_edge_routes_the_domain_to_every_web_container_by_its_own_name(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    dynamic = routes(plan)["http"]
    assert dynamic["routers"]["app"]["rule"] == f"Host(`{settings.domain}`)"
    assert dynamic["routers"]["app"]["tls"] == {"certResolver": "letsencrypt"}
    assert dynamic["services"]["web"]["weighted"]["services"] == [{"name": "web-stable", "weight": 100}]
    servers = [s["url"] for s in dynamic["services"]["web-stable"]["loadBalancer"]["servers"]]
    # The Docker names carry each container's revision: a new container is not reachable under a
    # name an old one has, so the edge never sends it a request before the routes name it.
    names = [container(plan, "web", str(i)).inputs["name"] for i in range(settings.app.web.replicas)]
    assert servers == [f"http://{name}:{settings.app.web.port}" for name in names]
    assert all(name.startswith(f"audit-x-{stack}-web-") and len(name.rsplit("-", 1)[1]) == 8 for name in names)


def test_routes_are_written_once_the_web_containers_they_name_are_healthy(plan: Plan, stack: str) -> None:
    job = container(plan, "edge-routes")
    web = [c for c in containers(plan) if "-web-" in c.name]
    assert web and all(c.inputs["wait"] is True for c in web)
    assert {c.urn for c in web} <= set(job.dependencies)
    # Traefik watches the directory the job writes into, on a volume they share.
    static = edge_file(plan, "/etc/traefik/traefik.yml")
    assert static["providers"] == {"file": {"directory": ROUTES_DIR, "watch": True}}
    edge_volumes = {v["containerPath"]: v["volumeName"] for v in container(plan, "edge").inputs["volumes"]}
    job_volumes = {v["containerPath"]: v["volumeName"] for v in job.inputs["volumes"]}
    assert edge_volumes[ROUTES_DIR] == job_volumes[ROUTES_DIR] == f"audit-x-{stack}-edge-routes"


def test_the_routes_job_replaces_the_file_in_one_rename(plan: Plan, tmp_path: Path) -> None:
    job = container(plan, "edge-routes")
    (tmp_path / "new.yml").write_text(uploaded(job, NEW_ROUTES_FILE))
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "routes.yml").write_text("old: true\n")
    job_env = env(job) | {"NEW_ROUTES_FILE": str(tmp_path / "new.yml"), "ROUTES_DIR": str(tmp_path / "routes")}
    result = subprocess.run(
        ["/bin/sh", "-c", job.inputs["command"][0]],
        env={"PATH": "/usr/bin:/bin", **job_env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert yaml.safe_load((tmp_path / "routes" / "routes.yml").read_text()) == routes(plan)
    assert sorted(p.name for p in (tmp_path / "routes").iterdir()) == ["routes.yml"]
    assert "servers" in result.stdout


def test_edge_sends_traffic_only_to_ready_containers(plan: Plan) -> None:
    services = routes(plan)["http"]["services"]
    balancer = services["web-stable"]["loadBalancer"]
    assert balancer["healthCheck"] == {"path": "/ready", "interval": "5s", "timeout": "3s"}
    # The split follows its sides' health: a side with no ready server gets nothing.
    assert services["web"]["weighted"]["healthCheck"] == {}


def test_rate_limit_comes_from_config(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    limit = routes(plan)["http"]["middlewares"]["rate-limit"]["rateLimit"]
    assert (limit["average"], limit["burst"]) == (settings.edge.rate_limit_average, settings.edge.rate_limit_burst)
    assert limit["sourceCriterion"] == {"ipStrategy": {"depth": 0}}


def test_rate_limit_follows_a_config_change() -> None:
    edge = json.loads(load_stack_config("staging")["audit-x:edge"]) | {"rateLimitAverage": 7, "rateLimitBurst": 9}
    plan = run_program("staging", overrides={"audit-x:edge": json.dumps(edge)})
    limit = routes(plan)["http"]["middlewares"]["rate-limit"]["rateLimit"]
    assert (limit["average"], limit["burst"]) == (7, 9)


def test_edge_has_tls_security_headers_json_access_logs_and_no_docker_socket(plan: Plan, stack: str) -> None:
    static = edge_file(plan, "/etc/traefik/traefik.yml")
    assert static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]["to"] == "websecure"
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["email"] == "ops@audit-x.example.com"
    assert static["accessLog"]["format"] == "json"
    assert "docker" not in static["providers"]
    headers = routes(plan)["http"]["middlewares"]["security-headers"]["headers"]
    assert headers["stsSeconds"] >= 31536000 and headers["contentTypeNosniff"] and headers["frameDeny"]
    edge = container(plan, "edge")
    assert network_names(edge) == [f"audit-x-{stack}-app"]
    assert not any("docker.sock" in str(v) for v in edge.inputs.get("volumes", []) + edge.inputs.get("mounts", []))


def test_web_containers_wait_for_health_and_are_replaced_new_before_old_explicitly(plan: Plan, stack: str) -> None:
    settings = load_settings(load_stack_config(stack))
    for index in range(settings.app.web.replicas):
        web = container(plan, "web", str(index))
        assert web.inputs["wait"] is True
        assert web.inputs["waitTimeout"] == settings.app.web.health_timeout_seconds
        # Set, not merely left unset: pulumi-docker replaces containers delete-first by default.
        assert (web.delete_before_replace_defined, web.delete_before_replace) == (True, False)
        assert web.inputs["stopTimeout"] == settings.app.web.drain_seconds


def test_a_new_image_means_new_container_names_under_the_same_resources() -> None:
    app = json.loads(load_stack_config("prod")["audit-x:app"]) | {"image": "ghcr.io/audit-x/audit_x:1.5.0"}
    before = run_program("prod")
    after = run_program("prod", overrides={"audit-x:app": json.dumps(app)})
    old = {c.name: c.inputs["name"] for c in containers(before)}
    new = {c.name: c.inputs["name"] for c in containers(after)}
    assert old.keys() == new.keys()  # same logical resources: Pulumi replaces them, new first
    changed = {name for name in old if old[name] != new[name]}
    assert changed == {
        n for n in old if "-web-" in n or "-worker-" in n or n.endswith(("-migrate", "-pre-migrate", "-edge-routes"))
    }


# --- built alone -------------------------------------------------------------------------------

EDGE_SETTINGS = EdgeSettings(
    acme_email="certs@example.org", rate_limit_average=7, rate_limit_burst=11, memory_limit_mb=96
)
DOMAIN = "audit.example.org"


def build_edge(web: int = 2, canary: int = 0, canary_weight: int = 0) -> Plan:
    """The edge in front of `web` stand-in web containers (`audit-x-test-web-<i>`) and `canary` others."""

    def declare() -> None:
        ctx = component_context()

        def stand_in(name: str) -> docker.Container:
            return docker.Container(name, name=name, image="ghcr.io/audit-x/audit_x:1.0.0")

        Edge(
            "audit-x-test-edge",
            EDGE_SETTINGS,
            ctx=ctx,
            domain=DOMAIN,
            web=[stand_in(ctx.name("web", str(i))) for i in range(web)],
            web_port=3100,
            canary=[stand_in(ctx.name("web", "canary", str(i))) for i in range(canary)] or None,
            canary_weight=canary_weight,
            grafana_host="grafana-host",
            app_network=networks(ctx).app,
        )

    return run_component(declare)


def routes_of(plan: Plan) -> dict:
    job = declared(plan, tokens.CONTAINER, "audit-x-test-edge-routes")
    return yaml.safe_load(upload(job, "/run/audit-x/routes.yml")["content"])["http"]


def test_edge_alone_publishes_80_and_443_on_the_app_network_only() -> None:
    plan = build_edge()
    assert children(plan, "audit-x-test-edge") == [
        (tokens.CONTAINER, "audit-x-test-edge"),
        (tokens.CONTAINER, "audit-x-test-edge-routes"),
        (tokens.REMOTE_IMAGE, "audit-x-test-edge-image"),
        (tokens.VOLUME, "audit-x-test-edge-acme"),
        (tokens.VOLUME, "audit-x-test-edge-routes"),
    ]
    edge = declared(plan, tokens.CONTAINER, "audit-x-test-edge")
    assert edge.inputs["ports"] == [
        {"internal": 80, "external": 80, "protocol": "tcp"},
        {"internal": 443, "external": 443, "protocol": "tcp"},
    ]
    assert edge.inputs["networksAdvanced"] == [{"name": "audit-x-test-app", "aliases": ["edge"]}]
    # Two volumes of its own, and nothing of the host's (no Docker socket).
    assert volumes(edge) == {
        "/var/lib/traefik": "audit-x-test-edge-acme",
        "/etc/traefik/routes": "audit-x-test-edge-routes",
    }
    assert len(edge.inputs["volumes"]) == 2
    assert edge.inputs["command"] == ["traefik", "--configFile=/etc/traefik/traefik.yml"]
    assert edge.inputs["memory"] == 96
    static = yaml.safe_load(upload(edge, "/etc/traefik/traefik.yml")["content"])
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["email"] == "certs@example.org"
    assert static["providers"] == {"file": {"directory": "/etc/traefik/routes", "watch": True}}
    assert healthcheck_command(edge) == "wget -q -O- http://127.0.0.1:8082/ping | grep -qx OK"


def test_the_routes_job_names_each_web_container_and_waits_until_they_are_healthy() -> None:
    plan = build_edge(web=2)
    job = declared(plan, tokens.CONTAINER, "audit-x-test-edge-routes")
    web = [declared(plan, tokens.CONTAINER, f"audit-x-test-web-{i}") for i in range(2)]
    assert {w.urn for w in web} <= set(job.dependencies)
    assert volumes(job) == {"/etc/traefik/routes": "audit-x-test-edge-routes"}
    assert network_names(job) == ["audit-x-test-app"]
    assert env(job) == {"NEW_ROUTES_FILE": "/run/audit-x/routes.yml", "ROUTES_DIR": "/etc/traefik/routes"}
    dynamic = routes_of(plan)
    assert dynamic["services"]["web-stable"]["loadBalancer"]["servers"] == [
        {"url": "http://audit-x-test-web-0:3100"},
        {"url": "http://audit-x-test-web-1:3100"},
    ]
    assert dynamic["routers"]["app"]["rule"] == "Host(`audit.example.org`)"
    assert dynamic["routers"]["grafana"]["rule"] == "Host(`grafana.audit.example.org`)"
    assert dynamic["services"]["grafana"]["loadBalancer"]["servers"] == [{"url": "http://grafana-host:3000"}]
    assert {k: dynamic["middlewares"]["rate-limit"]["rateLimit"][k] for k in ("average", "burst")} == {
        "average": 7,
        "burst": 11,
    }


def test_without_a_canary_the_routes_have_none_and_with_one_it_takes_its_weight() -> None:
    without = routes_of(build_edge(web=1))
    assert without["services"]["web"]["weighted"]["services"] == [{"name": "web-stable", "weight": 100}]
    assert "web-canary" not in without["services"]
    assert "app-canary" not in without["routers"]

    plan = build_edge(web=1, canary=1, canary_weight=20)
    dynamic = routes_of(plan)
    assert dynamic["services"]["web"]["weighted"]["services"] == [
        {"name": "web-stable", "weight": 80},
        {"name": "web-canary", "weight": 20},
    ]
    assert dynamic["services"]["web-canary"]["loadBalancer"]["servers"] == [
        {"url": "http://audit-x-test-web-canary-0:3100"}
    ]
    assert dynamic["routers"]["app-canary"]["rule"] == "Host(`audit.example.org`) && Header(`X-Canary`, `1`)"
    canary = declared(plan, tokens.CONTAINER, "audit-x-test-web-canary-0")
    assert canary.urn in declared(plan, tokens.CONTAINER, "audit-x-test-edge-routes").dependencies
