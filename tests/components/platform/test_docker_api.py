"""The Docker API proxy, run for real: HAProxy with the configuration the program renders, in
front of a stand-in Docker API on a Unix socket. Reads the collector makes get through; writes,
and reads of a container's files or logs, never reach the socket.

Built alone too (harness.mock_engine.run_component, no stack config), at the end of the file:
the proxy, its network and its one socket mount."""

from __future__ import annotations

import http.client
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pulumi
import pytest

from components.lib import tokens
from components.platform.docker_api import DOCKER_SOCKET, PORT, DockerApiProxy, proxy_config
from harness.local_services import free_port
from harness.mock_engine import Plan, mock_image_id, run_component
from tests.helpers import (
    children,
    clashes,
    component_context,
    declared,
    healthcheck_command,
    labels,
    network_names,
    upload,
)

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


class _FakeDocker(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    seen: list[tuple[str, str]]


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        assert isinstance(self.server, _FakeDocker)
        self.server.seen.append((self.command, self.path))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # http.server's own method names.
    do_GET = _answer  # noqa: N815
    do_HEAD = _answer  # noqa: N815
    do_POST = _answer  # noqa: N815
    do_DELETE = _answer  # noqa: N815
    do_PUT = _answer  # noqa: N815

    def address_string(self) -> str:  # a Unix socket has no client address
        return "docker.sock"

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, _FakeDocker]]:
    assert HAPROXY, "no haproxy: `make test` installs it (harness/system_packages.sh)"
    directory = tmp_path_factory.mktemp("docker-api")
    socket_path = directory / "docker.sock"
    docker = _FakeDocker(str(socket_path), _Handler)
    docker.seen = []
    threading.Thread(target=docker.serve_forever, daemon=True).start()
    port = free_port()
    config = (
        proxy_config()
        .replace(f"server socket {DOCKER_SOCKET}", f"server socket {socket_path}")
        .replace(f"bind :{PORT}", f"bind 127.0.0.1:{port}")
        .replace("log stdout format raw daemon info", "")
    )
    (directory / "haproxy.cfg").write_text(config)
    haproxy = subprocess.Popen(
        [HAPROXY, "-f", str(directory / "haproxy.cfg"), "-db"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert haproxy.poll() is None, haproxy.stdout.read() if haproxy.stdout else "haproxy exited"
                assert time.monotonic() < deadline, "haproxy did not listen within 15 s"
                time.sleep(0.1)
        yield port, docker
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        docker.shutdown()


def request(port: int, method: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()


READS = [
    "/_ping",
    "/v1.43/version",
    "/v1.43/info",
    "/v1.43/containers/json?all=1",
    "/v1.43/containers/audit-x-prod-postgres/json",
    "/v1.43/containers/0123abcd/stats?stream=false",
]
REFUSED = [
    ("GET", "/v1.43/containers/0123abcd/archive?path=/run/secrets"),
    ("GET", "/v1.43/containers/0123abcd/export"),
    ("GET", "/v1.43/containers/0123abcd/logs?stdout=1"),
    ("GET", "/v1.43/containers/0123abcd/json/../archive?path=/run/secrets"),
    ("GET", "/v1.43/containers/%30123/../../images/json"),
    ("GET", "/v1.43/images/json"),
    ("GET", "/v1.43/secrets"),
    ("GET", "/v1.43/events"),
    ("POST", "/v1.43/containers/create"),
    ("POST", "/v1.43/containers/0123abcd/exec"),
    ("POST", "/v1.43/containers/0123abcd/json"),
    ("DELETE", "/v1.43/containers/0123abcd"),
    ("PUT", "/v1.43/containers/0123abcd/archive?path=/"),
]


@pytest.mark.parametrize("path", READS)
def test_the_collectors_reads_get_through(proxy: tuple[int, _FakeDocker], path: str) -> None:
    port, docker = proxy
    assert request(port, "GET", path) == 200
    assert ("GET", path) in docker.seen


@pytest.mark.parametrize(("method", "path"), REFUSED)
def test_everything_else_is_refused_before_the_socket(proxy: tuple[int, _FakeDocker], method: str, path: str) -> None:
    port, docker = proxy
    before = len(docker.seen)
    assert request(port, method, path) == 403
    assert len(docker.seen) == before


# --- built alone -------------------------------------------------------------------------------

PROXY_IMAGE = "ghcr.io/tecnativa/docker-socket-proxy:v0.4.0"


def build_proxies(*environments: str) -> Plan:
    def declare() -> None:
        for environment in environments:
            ctx = component_context(environment)
            proxy = DockerApiProxy(ctx.name("docker-api"), PROXY_IMAGE, ctx=ctx)
            pulumi.export(f"{environment}-endpoint", proxy.endpoint)

    return run_component(declare)


def test_proxy_alone_holds_the_socket_read_only_on_an_internal_network_of_its_own() -> None:
    plan = build_proxies("test")
    name = "audit-x-test-docker-api"
    assert children(plan, name) == [
        (tokens.CONTAINER, name),
        (tokens.NETWORK, name),
        (tokens.REMOTE_IMAGE, f"{name}-image"),
    ]
    network = declared(plan, tokens.NETWORK, name)
    assert {k: network.inputs[k] for k in ("name", "driver", "internal")} == {
        "name": name,
        "driver": "bridge",
        "internal": True,
    }
    assert labels(network)["io.audit-x.role"] == "docker-api"
    image = declared(plan, tokens.REMOTE_IMAGE, f"{name}-image")
    assert (image.inputs["name"], image.inputs["keepLocally"]) == (PROXY_IMAGE, True)
    proxy = declared(plan, tokens.CONTAINER, name)
    assert proxy.inputs["image"] == mock_image_id(PROXY_IMAGE)
    # The collector reaches it as tcp://docker-api:2375: that alias, on this network alone.
    assert plan.outputs["test-endpoint"] == "tcp://docker-api:2375"
    assert proxy.inputs["networksAdvanced"] == [{"name": name, "aliases": ["docker-api"]}]
    assert proxy.inputs["volumes"] == [
        {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}
    ]
    assert upload(proxy, "/usr/local/etc/haproxy/haproxy.cfg.template") == {
        "file": "/usr/local/etc/haproxy/haproxy.cfg.template",
        "content": proxy_config(),
        "permissions": "0444",
    }
    assert healthcheck_command(proxy) == "wget -q -O- http://127.0.0.1:2375/_ping | grep -qx OK"
    assert {k: labels(proxy)[f"io.audit-x.{k}"] for k in ("service", "role", "lifecycle")} == {
        "service": "docker-api",
        "role": "proxy",
        "lifecycle": "service",
    }
    assert (proxy.inputs["memory"], proxy.inputs["memorySwap"]) == (128, 128)


def test_two_proxies_side_by_side_each_join_only_their_own_network() -> None:
    plan = build_proxies("test", "qa")
    assert clashes(plan) == []
    for environment in ("test", "qa"):
        name = f"audit-x-{environment}-docker-api"
        assert network_names(declared(plan, tokens.CONTAINER, name)) == [name]
