"""The metrics collector: Telegraf, writing to the environment's InfluxDB.

Telegraf because InfluxDB is already here (its native writer, no Prometheus server to run), and
because one agent covers every source the alerts need: the Docker API (CPU, memory, restarts,
health status of each container), HTTP probes of the web role, Redpanda's Prometheus endpoint
(consumer-group lag) and the filesystem the Docker volumes live on.

It reads the Docker API through the read-only proxy (components/platform/docker_api.py), on the
private network they alone share; it mounts no socket. It runs as an unprivileged uid, and reads
the InfluxDB token from its secret file through Telegraf's Docker secret store: the token is in
neither its environment nor its config file.

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

from components.data.influxdb import InfluxDbEndpoint
from components.lib.containers import (
    SECRETS_DIR,
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    SecretFile,
    long_running_container,
    on_network,
    pinned_image,
)
from components.lib.context import EnvironmentContext
from components.lib.tokens import LABEL_PREFIX
from components.observability.watcher import HEARTBEAT_FIELD, HEARTBEAT_MEASUREMENT, Heartbeat
from components.platform.docker_api import DockerApiProxy
from components.platform.edge import METRICS_PORT as EDGE_METRICS_PORT
from components.platform.network import Networks
from components.settings import MonitoringSettings

CONFIG_PATH = "/etc/telegraf/telegraf.conf"
# Telegraf's Docker secret store reads /run/secrets/<key>; keys are letters, digits and underscores.
SECRET_STORE = "docker_secretstore"
INFLUX_TOKEN_KEY = "influxdb_token"
INFLUX_TOKEN_FILE = f"{SECRETS_DIR}/{INFLUX_TOKEN_KEY}"
HEARTBEAT_CREDENTIALS_FILE = f"{SECRETS_DIR}/aws-heartbeat-credentials"
# An unprivileged uid of its own: the image's entrypoint runs Telegraf directly as a non-root user.
COLLECTOR_UID = "999"
HEALTH_PORT = 8080
REDPANDA_METRICS_URL = "http://redpanda:9644/public_metrics"
# The edge's per-service request counts and latency histograms (components/platform/edge.py).
EDGE_METRICS_URL = f"http://edge:{EDGE_METRICS_PORT}/metrics"
# Every state, so a container that stopped is reported as stopped instead of vanishing.
CONTAINER_STATES = ["created", "restarting", "running", "removing", "paused", "exited", "dead"]
PROBE_PATHS = {"live": "/live", "ready": "/ready", "health": "/health"}
# Measurement names the alert rules and the dashboard query (components/observability/alerting.py).
REDPANDA_MEASUREMENT = "redpanda"
EDGE_MEASUREMENT = "traefik"
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
    influxdb: InfluxDbEndpoint,
    docker_endpoint: str,
    heartbeat: Heartbeat,
) -> dict[str, Any]:
    """The collector's config as a document (rendered with render_toml). The token is a reference
    into Telegraf's Docker secret store (`@{store:key}`): no secret is written into the file."""
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
        "secretstores": {"docker": [{"id": SECRET_STORE}]},
        "agent": {
            "interval": interval,
            "round_interval": True,
            # No jitter: the time to detect (ops/ttd.py) adds up these intervals exactly.
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
                    "urls": [influxdb.url],
                    "token": f"@{{{SECRET_STORE}:{INFLUX_TOKEN_KEY}}}",
                    "organization": influxdb.org,
                    "bucket": influxdb.bucket,
                    "timeout": "5s",
                    "namedrop": [HEARTBEAT_MEASUREMENT],
                }
            ],
            # The dead man's switch (components/observability/watcher.py): the heartbeat alone, to
            # CloudWatch, with an identity that may put metric data in this namespace only.
            "cloudwatch": [
                {
                    "region": heartbeat.region,
                    "namespace": heartbeat.namespace,
                    "shared_credential_file": HEARTBEAT_CREDENTIALS_FILE,
                    "profile": heartbeat.profile,
                    "namepass": [HEARTBEAT_MEASUREMENT],
                    "fieldinclude": [HEARTBEAT_FIELD],
                    "taginclude": ["environment"],
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
                    "endpoint": docker_endpoint,
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
                },
                {
                    "urls": [EDGE_METRICS_URL],
                    "metric_version": 2,
                    "name_override": EDGE_MEASUREMENT,
                    # Requests by service and status code, and the latency histogram: stable vs canary.
                    "fieldinclude": ["traefik_service_requests_total", "traefik_service_request_duration_seconds_*"],
                    "response_timeout": "5s",
                },
            ],
            "disk": [{"mount_points": ["/"], "tagexclude": ["device", "mode"]}],
            "internal": [
                {
                    "interval": f"{heartbeat.interval_seconds}s",
                    "collect_memstats": False,
                    "fieldinclude": [HEARTBEAT_FIELD],
                }
            ],
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
        influxdb: InfluxDbEndpoint,
        docker_api: DockerApiProxy,
        heartbeat: Heartbeat,
        networks: Networks,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:Collector", name, None, opts)
        config = telegraf_config(
            settings,
            environment=ctx.environment,
            container_prefix=ctx.name() + "-",
            web_urls=web_urls,
            influxdb=influxdb,
            docker_endpoint=docker_api.endpoint,
            heartbeat=heartbeat,
        )
        self.image = pinned_image(f"{name}-image", settings.collector_image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="collector",
                role="metrics",
                image=self.image.image_id,
                memory_mb=settings.collector_memory_limit_mb,
                # data: InfluxDB and Redpanda; app: the web role's probes; the Docker API's own.
                networks=[on_network(networks.data), on_network(networks.app), on_network(docker_api.network)],
                command=["telegraf", "--config", CONFIG_PATH],
                files=[
                    ConfigFile(CONFIG_PATH, render_toml(config)),
                    SecretFile(INFLUX_TOKEN_FILE, influxdb.token, owner=COLLECTOR_UID),
                    SecretFile(HEARTBEAT_CREDENTIALS_FILE, heartbeat.credentials, owner=COLLECTOR_UID),
                ],
                user=f"{COLLECTOR_UID}:{COLLECTOR_UID}",
                healthcheck=HealthCheck(HEALTH_COMMAND),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[docker_api]),
            # A new collector (new probes, a new token) reports before the old one stops;
            # for that moment InfluxDB keeps one point per series and timestamp.
            rolling=True,
        )
        self.register_outputs({"container": self.container.name})
