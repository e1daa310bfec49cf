"""The Traefik stand-in (harness/docker_rig/stand_ins/traefik/) on this machine, with the edge's
static and dynamic configuration as the program renders them (components/platform/edge.py) and
small web servers on loopback addresses of their own as the web replicas.

Only the ports (80, 443, 8082, 8083 are taken by nothing here but may need root) and the two
directories of the static file are mapped; the routes are staging's, with a canary.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from components.platform.edge import HEALTH_COMMAND, PING_PORT, dynamic_config, static_config
from harness.docker_rig.stand_ins import STAND_INS_DIR
from harness.local_services import free_port, wait_for_port
from tests.helpers import run_probe, settings_of

TRAEFIK = STAND_INS_DIR / "traefik" / "traefik_stand_in.py"
DOMAIN = "staging.audit-x.example.com"
STABLE = ["127.0.0.2", "127.0.0.3"]
CANARY = ["127.0.0.4"]


class Replica:
    """A web replica: answers `/ready` with `ready_status`, anything else with its own address."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.ready_status = 200
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                status = replica.ready_status if self.path == "/ready" else 200
                body = address.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@dataclass
class Edge:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    routes_dir: Path
    replicas: dict[str, Replica]

    def get(self, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
        context = ssl._create_unverified_context()  # the stand-in's certificate is self-signed, as Traefik's default
        connection = http.client.HTTPSConnection("127.0.0.1", self.ports["websecure"], timeout=10, context=context)
        try:
            connection.request("GET", path, headers={"Host": DOMAIN, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read().decode(), dict(response.getheaders())
        finally:
            connection.close()

    def internal(self, entry_point: str, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.ports[entry_point], timeout=10)
        try:
            connection.request("GET", path, headers={"Host": DOMAIN})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


def write_routes(routes_dir: Path, web_port: int, canary_weight: int) -> None:
    config = dynamic_config(
        settings_of("staging").edge,
        domain=DOMAIN,
        web_servers=STABLE,
        web_port=web_port,
        grafana_host="127.0.0.5",
        canary_servers=CANARY,
        canary_weight=canary_weight,
    )
    scratch = routes_dir / ".routes.yml.new"
    scratch.write_text(yaml.safe_dump(config))
    scratch.replace(routes_dir / "routes.yml")  # one rename, as the edge's routes job does


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    static = static_config(settings_of("staging").edge)
    ports = {name: free_port() for name in static["entryPoints"]}
    for name, port in ports.items():
        static["entryPoints"][name]["address"] = f"127.0.0.1:{port}"
    routes_dir = tmp_path / "routes"
    routes_dir.mkdir()
    static["providers"]["file"]["directory"] = str(routes_dir)
    static["certificatesResolvers"]["letsencrypt"]["acme"]["storage"] = str(tmp_path / "acme.json")
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    web_port = free_port()
    replicas = {address: Replica(address, web_port) for address in STABLE + CANARY}
    write_routes(routes_dir, web_port, canary_weight=0)
    process = subprocess.Popen(
        [sys.executable, str(TRAEFIK), f"--configFile={tmp_path / 'traefik.yml'}"],
        env={**os.environ, "PYTHONPATH": str(STAND_INS_DIR / "base")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for port in ports.values():
            wait_for_port(port, None)
        running = Edge(process, ports, routes_dir, replicas)
        wait_until(lambda: running.get()[0] == 200, "the app router answering")
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        for each in replicas.values():
            each.server.shutdown()
            each.server.server_close()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.1)


def test_the_declared_health_check_passes_on_the_ping_entry_point(edge: Edge) -> None:
    probe = HEALTH_COMMAND.replace(f":{PING_PORT}/", f":{edge.ports['ping']}/")
    assert probe != HEALTH_COMMAND
    assert run_probe(probe, {}) == 0
    edge.process.send_signal(signal.SIGTERM)
    assert edge.process.wait(timeout=30) == 0
    assert run_probe(probe, {}) != 0


def test_stable_replicas_share_the_traffic_and_get_the_security_headers(edge: Edge) -> None:
    answers = [edge.get() for _ in range(10)]
    assert Counter(body for _, body, _ in answers) == {"127.0.0.2": 5, "127.0.0.3": 5}
    headers = answers[0][2]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"]) == ("DENY", "nosniff")
    assert edge.internal("web", "/live") == (308, "")


def test_a_replica_whose_ready_fails_gets_no_traffic(edge: Edge) -> None:
    edge.replicas["127.0.0.3"].ready_status = 503
    # The routes check /ready every 5 s.
    wait_until(lambda: {edge.get()[1] for _ in range(4)} == {"127.0.0.2"}, "127.0.0.3 out of the rotation", 12)
    edge.replicas["127.0.0.2"].ready_status = 503
    wait_until(lambda: edge.get()[0] == 503, "no replica left", 12)


def test_the_canary_takes_its_weight_and_every_x_canary_request(edge: Edge) -> None:
    assert {edge.get(headers={"X-Canary": "1"})[1] for _ in range(5)} == {"127.0.0.4"}
    assert "127.0.0.4" not in {edge.get()[1] for _ in range(8)}  # weight 0: no user traffic
    write_routes(edge.routes_dir, edge.replicas["127.0.0.4"].server.server_address[1], canary_weight=25)
    wait_until(lambda: "127.0.0.4" in {edge.get()[1] for _ in range(8)}, "the canary taking traffic")
    shares = Counter(edge.get()[1] for _ in range(40))
    assert shares["127.0.0.4"] == 10, shares  # smooth weighted round robin: exactly 25 of 100


def test_the_metrics_count_requests_per_service_and_code(edge: Edge) -> None:
    for _ in range(3):
        edge.get(headers={"X-Canary": "1"})
    status, metrics = edge.internal("metrics", "/metrics")
    assert status == 200
    line = 'traefik_service_requests_total{code="200",method="GET",protocol="http",service="web-canary@file"} 3'
    assert line in metrics.splitlines()
    assert 'traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",' in metrics


def test_a_client_over_its_rate_is_refused(edge: Edge) -> None:
    # Staging: 20 a second, bursts of 40, per client address; one kept-alive connection, to be fast.
    context = ssl._create_unverified_context()
    connection = http.client.HTTPSConnection("127.0.0.1", edge.ports["websecure"], timeout=10, context=context)
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    for _ in range(100):
        connection.request("GET", "/", headers={"Host": DOMAIN})
        response = connection.getresponse()
        response.read()
        statuses[response.status] += 1
    elapsed = time.monotonic() - started
    connection.close()
    allowed = 40 + 20 * elapsed  # the burst, and what the rate refilled meanwhile
    assert 40 <= statuses[200] <= allowed + 1, (statuses, elapsed)
    assert statuses[429] == 100 - statuses[200]


def test_a_missing_static_file_stops_the_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TRAEFIK), f"--configFile={tmp_path / 'nowhere.yml'}"],
        env={**os.environ, "PYTHONPATH": str(STAND_INS_DIR / "base")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere.yml'} is missing or not readable" in result.stdout
