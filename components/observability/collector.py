"""The metrics collector: Telegraf, writing to the environment's InfluxDB.

Telegraf because InfluxDB is already here (its native writer, no Prometheus server to run), and
because one agent covers every source the alerts need: the Docker API (CPU, memory, restarts,
health status of each container), HTTP probes of the web role, Redpanda's Prometheus endpoint
(consumer-group lag) and the filesystem the Docker volumes live on.

It is the only container that mounts the Docker socket, read-only (policy/ enforces both). The
image runs Telegraf as the unprivileged `telegraf` user, so the container runs as
`telegraf:<docker group id of the host>` to be allowed to read the socket.

Disk: the collector's own root filesystem is an overlay whose `statfs` reports the filesystem
under Docker's data root, which holds the named volumes (Docker's default layout), so the disk
input measures the volumes' filesystem without mounting any volume's data into the collector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_docker as docker
import tomli_w

from components.lib.containers import (
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    long_running_container,
    on_network,
    pinned_image,
)
from components.lib.context import LABEL_PREFIX, EnvironmentContext
from components.settings import MonitoringSettings

CONFIG_PATH = "/etc/telegraf/telegraf.conf"
DOCKER_SOCKET = "/var/run/docker.sock"
HEALTH_PORT = 8080
REDPANDA_METRICS_URL = "http://redpanda:9644/public_metrics"
# Every state, so a container that stopped is reported as stopped instead of vanishing.
CONTAINER_STATES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"]
PROBE_PATHS = {"live": "/live", "ready": "/ready", "health": "/health"}
# Measurement names the alert rules and the dashboard query (components/observability/alerting.py).
REDPANDA_MEASUREMENT = "redpanda"
PROBE_MEASUREMENT = "http_response"
HEALTH_COMMAND = f"wget -q -O /dev/null http://127.0.0.1:{HEALTH_PORT}/"


def render_toml(document: Mapping[str, Any]) -> str:
    """Telegraf's config, written by tomli-w: plugins are arrays of tables (`[[inputs.docker]]`)."""
    return "# Written by the audit-x Pulumi program; edits are overwritten.\n" + tomli_w.dumps(document)


def telegraf_config(
    settings: MonitoringSettings,
    *,
    environment: str,
    container_prefix: str,
    web_urls: Sequence[str],
    influxdb_url: str,
    influxdb_org: str,
    influxdb_bucket: str,
) -> dict[str, Any]:
    """The collector's config as a document (rendered with render_toml). The token is `${INFLUX_TOKEN}`,
    which Telegraf reads from its environment: no secret is written into the file."""
    interval = f"{settings.collection_interval_seconds}s"
    slowest = max(settings.collection_interval_seconds, settings.flush_interval_seconds)
    probes = [
        {
            "urls": [f"{url}{path}" for url in web_urls],
            "response_timeout": f"{settings.probe_timeout_seconds}s",
            "method": "GET",
            "follow_redirects": False,
            "tags": {"probe": name},
        }
        for name, path in PROBE_PATHS.items()
    ]
    return {
        "agent": {
            "interval": interval,
            "round_interval": True,
            # No jitter: the time to detect (tools/ttd.py) adds up these intervals exactly.
            "collection_jitter": "0s",
            "flush_interval": f"{settings.flush_interval_seconds}s",
            "flush_jitter": "0s",
            "metric_batch_size": 1000,
            "metric_buffer_limit": 20000,
            "omit_hostname": True,
        },
        "global_tags": {"environment": environment},
        "outputs": {
            "influxdb_v2": [
                {
                    "urls": [influxdb_url],
                    "token": "${INFLUX_TOKEN}",
                    "organization": influxdb_org,
                    "bucket": influxdb_bucket,
                    "timeout": "5s",
                }
            ],
            # The container's health check: unhealthy when the Docker input stops producing (socket
            # unreadable, daemon gone), not merely when the process is up.
            "health": [
                {
                    "service_address": f"http://:{HEALTH_PORT}",
                    "max_time_between_metrics": f"{3 * slowest}s",
                    "namepass": ["docker"],
                    "contains": [{"field": "n_containers"}],
                }
            ],
        },
        "inputs": {
            "docker": [
                {
                    "endpoint": f"unix://{DOCKER_SOCKET}",
                    "gather_services": False,
                    "container_name_include": [f"{container_prefix}*"],
                    "container_state_include": CONTAINER_STATES,
                    "perdevice_include": [],
                    "total_include": ["cpu", "network"],
                    # environment/service/role/lifecycle become tags the rules group and filter by.
                    "docker_label_include": [f"{LABEL_PREFIX}.*"],
                    "timeout": "5s",
                }
            ],
            "http_response": probes,
            "prometheus": [
                {
                    "urls": [REDPANDA_METRICS_URL],
                    "metric_version": 2,
                    "name_override": REDPANDA_MEASUREMENT,
                    "fieldinclude": ["redpanda_kafka_consumer_group_*"],
                    "response_timeout": "5s",
                }
            ],
            "disk": [{"mount_points": ["/"], "tagexclude": ["device", "mode"]}],
        },
    }


class Collector(pulumi.ComponentResource):
    image: docker.RemoteImage
    container: docker.Container

    def __init__(
        self,
        name: str,
        settings: MonitoringSettings,
        *,
        ctx: EnvironmentContext,
        web_urls: Sequence[str],
        influxdb_url: str,
        influxdb_org: str,
        influxdb_bucket: str,
        influxdb_token: pulumi.Output[str],
        data_network: docker.Network,
        app_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:Collector", name, None, opts)
        config = telegraf_config(
            settings,
            environment=ctx.environment,
            container_prefix=ctx.name() + "-",
            web_urls=web_urls,
            influxdb_url=influxdb_url,
            influxdb_org=influxdb_org,
            influxdb_bucket=influxdb_bucket,
        )
        self.image = pinned_image(f"{name}-image", settings.collector_image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                # The policy pack lets only `service=collector` mount the Docker socket.
                service="collector",
                role="metrics",
                image=self.image.image_id,
                memory_mb=settings.collector_memory_limit_mb,
                # data: InfluxDB and Redpanda; app: the web role's probes.
                networks=[on_network(data_network), on_network(app_network)],
                command=["telegraf", "--config", CONFIG_PATH],
                env={"INFLUX_TOKEN": influxdb_token},
                files=[ConfigFile(CONFIG_PATH, render_toml(config))],
                host_mounts={DOCKER_SOCKET: DOCKER_SOCKET},
                user=f"telegraf:{settings.docker_group_id}",
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self),
            # A new collector (new probes, a new token) reports before the old one stops;
            # for that moment InfluxDB keeps one point per series and timestamp.
            rolling=True,
        )
        self.register_outputs({"container": self.container.name})
