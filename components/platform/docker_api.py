"""The Docker API behind a read-only proxy: the only container that holds the Docker socket.

A read-only bind mount of the socket is not read-only access: its holder can call every endpoint,
create a privileged container and own the host, and read every container's files through
`GET /containers/{id}/archive`. So nothing but this proxy mounts the socket, and it lets through
exactly the reads the metrics collector makes (`ALLOWED_READS`), with GET only, on a private
internal network that the proxy and the collector alone join.

The image is Tecnativa's docker-socket-proxy (HAProxy in front of the socket): the best-known
proxy of its kind, small, and configured by one HAProxy file. Its own allow-list works by path
prefix, too coarse here, so the program gives it its own configuration file
(`docker_api_proxy.cfg`, beside this file) in place of the image's template.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    long_running_container,
    on_network,
    pinned_image,
)
from components.lib.context import EnvironmentContext
from components.lib.files import render_shipped

PORT = 2375
HOSTNAME = "docker-api"
ENDPOINT = f"tcp://{HOSTNAME}:{PORT}"
DOCKER_SOCKET = "/var/run/docker.sock"
# Where the image's entrypoint takes the configuration from (it copies it to /tmp/haproxy.cfg).
CONFIG_TEMPLATE = "/usr/local/etc/haproxy/haproxy.cfg.template"
# What Telegraf's docker input reads (plugins/inputs/docker): the API version, the daemon's
# counts, the container list, each container's inspect (state, health) and stats.
_VERSION = r"(/v[0-9.]+)?"
_ID = r"[a-zA-Z0-9_.-]+"
ALLOWED_READS = {
    "ping": rf"^{_VERSION}/_ping$",
    "version": rf"^{_VERSION}/version$",
    "info": rf"^{_VERSION}/info$",
    "container list": rf"^{_VERSION}/containers/json$",
    "container inspect": rf"^{_VERSION}/containers/{_ID}/json$",
    "container stats": rf"^{_VERSION}/containers/{_ID}/stats$",
}
HEALTH_COMMAND = f"wget -q -O- http://127.0.0.1:{PORT}/_ping | grep -qx OK"


def proxy_config() -> str:
    rules = "\n".join(
        f"    http-request allow if {{ path,url_dec -m reg {pattern} }}  # {name}"
        for name, pattern in ALLOWED_READS.items()
    )
    return render_shipped(__file__, "docker_api_proxy.cfg", socket_path=DOCKER_SOCKET, port=PORT, allow_rules=rules)


class DockerApiProxy(pulumi.ComponentResource):
    network: docker.Network
    image: docker.RemoteImage
    container: docker.Container
    endpoint: str = ENDPOINT

    def __init__(
        self,
        name: str,
        image: str,
        *,
        ctx: EnvironmentContext,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:platform:DockerApiProxy", name, None, opts)
        # Internal: the proxy and the collector only, reaching nothing outside.
        self.network = docker.Network(
            name,
            name=name,
            driver="bridge",
            internal=True,
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in ctx.labels("network", "docker-api").items()],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image = pinned_image(f"{name}-image", image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                # The policy pack lets only `service=docker-api` mount the Docker socket.
                service="docker-api",
                role="proxy",
                image=self.image.image_id,
                memory_mb=128,
                networks=[on_network(self.network, HOSTNAME)],
                files=[ConfigFile(CONFIG_TEMPLATE, proxy_config())],
                host_mounts={DOCKER_SOCKET: DOCKER_SOCKET},
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"container": self.container.name, "endpoint": ENDPOINT})
