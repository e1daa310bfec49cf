"""The rig's stand-ins (harness/docker_rig/stand_ins/) and its real Redis, each in a real container
on the rig, created as the staging plan declares the service (harness/docker_rig/stand_ins/
declared.py): its command, environment, user, uploads and health check verbatim, the image
standing for the declared one. Each declared health check must turn healthy; a stand-in missing
a file it requires must stop, naming it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest

from harness.docker_rig import catalogue
from harness.docker_rig.containers import Container, network, unique
from harness.docker_rig.engine import Rig
from harness.docker_rig.images import RigImages
from harness.docker_rig.stand_ins import SERVICES, STAND_IN_LABEL, RigImage
from harness.docker_rig.stand_ins.declared import declared_container, run_to_end
from harness.mock_engine import Plan
from tests.helpers import container as declared

HEALTHY_WITHIN = 30.0


@pytest.fixture(scope="module")
def staging(plans: dict[str, Plan]) -> Plan:
    return plans["staging"]


@pytest.fixture(scope="module")
def rig(rig_images: RigImages) -> Rig:
    return rig_images.rig


@pytest.fixture(scope="module")
def images(rig_images: RigImages) -> dict[str, str]:
    """Every stand-in image in the rig: reference -> tag (built, or loaded from the cache)."""
    return {reference: rig_images[spec] for reference, spec in catalogue.STAND_INS.items()}


def image_of(images: dict[str, str], service: str) -> str:
    return images[SERVICES[service].reference]


@pytest.fixture
def net(rig: Rig) -> Iterator[str]:
    with network(rig, internal=True) as name:
        yield name


@contextlib.contextmanager
def volume(rig: Rig) -> Iterator[str]:
    name = unique("rig-vol")
    rig.docker("volume", "create", name)
    try:
        yield name
    finally:
        rig.docker("volume", "rm", "--force", name, check=False)


def without(resource_uploads: list[dict], path: str) -> list[dict]:
    kept = [upload for upload in resource_uploads if upload["file"] != path]
    assert len(kept) == len(resource_uploads) - 1, path
    return kept


def exits_naming(rig: Rig, box: Container, path: str) -> None:
    code, output = run_to_end(rig, box, timeout=60)
    assert code != 0
    assert f"{path} is missing or not readable" in output, output


@pytest.mark.parametrize("image", [i for i in SERVICES.values() if not i.real], ids=lambda i: i.reference)
def test_every_stand_in_image_is_labelled_as_one(rig: Rig, images: dict[str, str], image: RigImage) -> None:
    labels = json.loads(rig.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image.reference).stdout)
    assert labels[STAND_IN_LABEL] == image.context.name


def test_redpanda_turns_healthy_and_takes_the_lag_metrics_properties(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    image = image_of(images, "redpanda")
    with declared_container(rig, declared(staging, "redpanda"), image, network=net) as broker:
        assert broker.wait_for("healthy", HEALTHY_WITHIN) < HEALTHY_WITHIN
        code, health = broker.exec("rpk", "cluster", "health")
        assert code == 0 and "Healthy:                          true" in health.splitlines()
        # The bootstrap file's properties, read at cluster creation.
        code, config = broker.exec("curl", "-fsS", "http://127.0.0.1:9644/v1/cluster_config")
        assert json.loads(config)["consumer_group_lag_collection_interval_sec"] == 10
        with declared_container(rig, declared(staging, "redpanda-lag-metrics"), image, network=net) as job:
            code, output = run_to_end(rig, job)
        assert code == 0, output
        assert output.count("Successfully updated configuration.") == 2
        code, metrics = broker.exec("curl", "-fsS", "http://127.0.0.1:9644/public_metrics")
        assert "redpanda_kafka_consumer_group_lag_max" in metrics
        broker.rig.docker("exec", broker.name, "pkill", "-f", "redpanda_stand_in.py", check=False)
        code, _ = broker.exec("sh", "-c", declared(staging, "redpanda").plain_inputs["healthcheck"]["tests"][1])
        assert code != 0


def test_influxdb_sets_up_from_its_files_and_checks_the_operator_token(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    resource = declared(staging, "influxdb")
    token = next(u["content"] for u in resource.plain_inputs["uploads"] if u["file"].endswith("operator-token"))
    with declared_container(rig, resource, image_of(images, "influxdb"), network=net) as influx:
        influx.wait_for("healthy", HEALTHY_WITHIN)
        write = "http://127.0.0.1:8086/api/v2/write?org=audit-x&bucket=metrics"
        curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "cpu v=1", write]
        assert influx.exec(*curl, "-H", f"Authorization: Token {token}") == (0, "204")
        assert influx.exec(*curl, "-H", "Authorization: Token not-the-token") == (0, "401")
    missing = without(resource.plain_inputs["uploads"], "/run/secrets/influxdb-operator-token")
    with declared_container(rig, resource, image_of(images, "influxdb"), network=net, uploads=missing) as influx:
        exits_naming(rig, influx, "/run/secrets/influxdb-operator-token")


def test_grafana_takes_its_admin_password_from_the_job_and_a_rotation_without_a_restart(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    image = image_of(images, "grafana")
    job = declared(staging, "grafana-admin-password")
    server = declared(staging, "grafana")
    first = next(u for u in job.plain_inputs["uploads"] if u["file"].endswith("grafana-admin-password"))
    with volume(rig) as data:
        shared = {"/var/lib/grafana": data}
        with declared_container(rig, job, image, network=net, volumes=shared) as once:
            assert run_to_end(rig, once)[0] == 0
        with declared_container(rig, server, image, network=net, volumes=shared) as grafana:
            grafana.wait_for("healthy", HEALTHY_WITHIN)

            def user_status(password: str) -> str:
                return grafana.exec(
                    *("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", f"admin:{password}"),
                    "http://127.0.0.1:3000/api/user",
                )[1]

            assert user_status(first["content"]) == "200"
            assert user_status("not-the-password") == "401"
            rotated = [{**first, "content": "Rotated0Grafana1Password2xxxxxxxxxx"}]
            with declared_container(rig, job, image, network=net, volumes=shared, uploads=rotated) as again:
                code, output = run_to_end(rig, again)
            assert code == 0 and "admin password changed in the running Grafana's database" in output
            assert (user_status(rotated[0]["content"]), user_status(first["content"])) == ("200", "401")
            code, rules = grafana.exec(
                "curl",
                "-fsS",
                "-u",
                f"admin:{rotated[0]['content']}",
                "http://127.0.0.1:3000/api/v1/provisioning/alert-rules",
            )
            assert code == 0 and len(json.loads(rules)) >= 10
        missing = without(server.plain_inputs["uploads"], "/run/secrets/influxdb-token")
        with declared_container(rig, server, image, network=net, volumes=shared, uploads=missing) as broken:
            exits_naming(rig, broken, "/run/secrets/influxdb-token")


def test_loki_turns_healthy_and_stops_without_its_config(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    resource = declared(staging, "loki")
    with declared_container(rig, resource, image_of(images, "loki"), network=net) as loki:
        loki.wait_for("healthy", HEALTHY_WITHIN)
        assert loki.exec("id", "-u") == (0, "10001\n")
    with declared_container(rig, resource, image_of(images, "loki"), network=net, uploads=[]) as loki:
        exits_naming(rig, loki, "/etc/loki/audit-x.yaml")


def test_alloy_turns_healthy_with_its_log_mount_and_stops_without_its_config(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    resource = declared(staging, "alloy")
    with declared_container(rig, resource, image_of(images, "alloy"), network=net) as alloy:
        alloy.wait_for("healthy", HEALTHY_WITHIN)
    with declared_container(rig, resource, image_of(images, "alloy"), network=net, uploads=[]) as alloy:
        exits_naming(rig, alloy, "/etc/alloy/config.alloy")


DOCKER_API_STAND_IN = """
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({} if self.path.startswith("/info") else [{"Id": "x"}]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 2375), H).serve_forever()
"""


def test_the_collector_is_healthy_only_while_the_docker_api_answers(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    resource = declared(staging, "collector")
    base = images["audit-x-rig/stand-in-base:1"]
    with declared_container(rig, resource, image_of(images, "collector"), network=net) as collector:
        assert collector.exec("id", "-u") == (0, "999\n")
        # No Docker API behind docker-api:2375: the health output answers 503 and the check fails.
        code, _ = collector.exec("sh", "-c", resource.plain_inputs["healthcheck"]["tests"][1])
        assert code != 0
        api_options = ["--network-alias=docker-api"]
        name = unique("rig-docker-api")
        rig.docker(
            "run",
            "--detach",
            "--name",
            name,
            f"--network={net}",
            *api_options,
            base,
            "python3",
            "-c",
            DOCKER_API_STAND_IN,
        )
        try:
            collector.wait_for("healthy", HEALTHY_WITHIN)
        finally:
            rig.docker("rm", "--force", name, check=False)
    missing = without(resource.plain_inputs["uploads"], "/run/secrets/influxdb_token")
    with declared_container(rig, resource, image_of(images, "collector"), network=net, uploads=missing) as broken:
        exits_naming(rig, broken, "/run/secrets/influxdb_token")


def test_the_edge_turns_healthy_and_its_routes_job_writes_where_it_watches(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    image = image_of(images, "edge")
    with volume(rig) as routes:
        shared = {"/etc/traefik/routes": routes}
        with declared_container(rig, declared(staging, "edge"), image, network=net, volumes=shared) as edge:
            edge.wait_for("healthy", HEALTHY_WITHIN)
            with declared_container(rig, declared(staging, "edge-routes"), image, network=net, volumes=shared) as job:
                code, output = run_to_end(rig, job)
            assert code == 0 and "routes written: 2 servers" in output, output
            # The app's router is there; its replica (not on this network) cannot be reached: 502.
            request = [
                "curl",
                "-ks",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: staging.audit-x.example.com",
            ]
            code, status = edge.exec(*request, "https://127.0.0.1/")
            assert status in ("502", "503"), status
            assert edge.exec(*request, "http://127.0.0.1/live") == (0, "308")


def test_redis_runs_the_rendered_config_as_user_999_and_its_probe_needs_the_password(
    rig: Rig, images: dict[str, str], staging: Plan, net: str
) -> None:
    image = image_of(images, "redis")
    with volume(rig) as credentials:
        shared = {"/var/lib/audit-x-credentials": credentials}
        with declared_container(rig, declared(staging, "redis-password"), image, network=net, volumes=shared) as job:
            code, output = run_to_end(rig, job)
        assert code == 0 and "users file written" in output, output
        with declared_container(rig, declared(staging, "redis"), image, network=net, volumes=shared) as redis:
            redis.wait_for("healthy", HEALTHY_WITHIN)
            code, version = redis.exec("redis-server", "--version")
            assert "v=8.0" in version
            # The server wrote its append-only files as the redis user (999), not as root.
            assert redis.exec("stat", "-c", "%u", "/data/appendonlydir") == (0, "999\n")
            code, reply = redis.exec("redis-cli", "-a", "not-the-password", "--no-auth-warning", "ping")
            assert "WRONGPASS" in reply
