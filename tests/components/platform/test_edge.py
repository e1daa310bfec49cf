"""The edge proxy and the health-gated rollout, as the program declares them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from components.platform.edge import NEW_ROUTES_FILE, ROUTES_DIR
from components.settings import load_settings
from harness.mock_engine import Plan, load_stack_config, run_program
from tests.helpers import container, containers, edge_file, env, network_names, routes, uploaded


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
