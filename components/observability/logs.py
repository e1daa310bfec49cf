"""Centralised logs: Loki (single binary, filesystem storage, retention) fed by Grafana Alloy.

Alloy (Promtail's successor) tails the containers' json-file logs from the host, read-only; it
does not need the Docker socket, which is kept for the metrics collector alone. Every container's
log options write its environment, service and role into each line's `attrs`, and those become
the Loki labels, with the level of the app's JSON lines. `request_id` stays in the line (a label
per request would explode Loki's index) and is queried with `| json | request_id="..."`.
Lines of another environment sharing the host are dropped.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker
import yaml

from components.lib.containers import (
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    long_running_container,
    named_volume,
    on_network,
    pinned_image,
)
from components.lib.context import EnvironmentContext
from components.lib.files import render_shipped
from components.lib.tokens import LABEL_PREFIX
from components.settings import LogsSettings

LOKI_PORT = 3100
LOKI_HOSTNAME = "loki"
LOKI_URL = f"http://{LOKI_HOSTNAME}:{LOKI_PORT}"
LOKI_CONFIG = "/etc/loki/audit-x.yaml"
ALLOY_CONFIG = "/etc/alloy/config.alloy"
ALLOY_PORT = 12345
DOCKER_LOGS = "/var/lib/docker/containers"
LABELS = ("environment", "service", "role")

LOKI_HEALTH = f"wget -q -O- http://127.0.0.1:{LOKI_PORT}/ready | grep -q ready"
# The Alloy image has bash but neither curl nor wget.
ALLOY_HEALTH = (
    f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{ALLOY_PORT} && "
    'printf "GET /-/ready HTTP/1.0\\r\\n\\r\\n" >&3 && grep -q " 200 " <&3\''
)


def loki_config(settings: LogsSettings) -> dict[str, Any]:
    """Loki 3, single binary: TSDB index (schema v13) on the filesystem, retention by compactor."""
    return {
        "auth_enabled": False,
        "server": {"http_listen_port": LOKI_PORT, "grpc_listen_port": 9096, "log_format": "json"},
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": "/loki",
            "storage": {"filesystem": {"chunks_directory": "/loki/chunks", "rules_directory": "/loki/rules"}},
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
        },
        "schema_config": {
            "configs": [
                {
                    "from": "2026-01-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "limits_config": {
            "retention_period": f"{settings.retention_days * 24}h",
            "reject_old_samples": True,
            "reject_old_samples_max_age": "168h",
        },
        # Retention is the compactor's job, and Loki 3 refuses retention without a store for
        # delete requests.
        "compactor": {
            "working_directory": "/loki/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            "delete_request_store": "filesystem",
        },
        "analytics": {"reporting_enabled": False},
    }


def alloy_config(environment: str) -> str:
    """Alloy's pipeline: the host's json-file logs -> labels from attrs -> this environment's -> Loki."""
    expressions = ",\n".join(
        [
            '      output = "log"',
            '      stream = "stream"',
            '      time   = "time"',
            *[f'      {name} = "attrs.\\"{LABEL_PREFIX}.{name}\\""' for name in LABELS],
        ]
    )
    label_values = ", ".join(f'{name} = ""' for name in LABELS)
    return render_shipped(
        __file__,
        "config.alloy",
        expressions=expressions,
        label_values=label_values,
        environment=environment,
        docker_logs=DOCKER_LOGS,
        loki_url=LOKI_URL,
    )


class Logs(pulumi.ComponentResource):
    loki_volume: docker.Volume
    loki_image: docker.RemoteImage
    loki: docker.Container
    alloy_volume: docker.Volume
    alloy_image: docker.RemoteImage
    alloy: docker.Container
    url: str = LOKI_URL

    def __init__(
        self,
        name: str,
        settings: LogsSettings,
        *,
        ctx: EnvironmentContext,
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:observability:Logs", name, None, opts)
        self.loki_volume = named_volume(ctx, ctx.name("loki", "data"), "loki", "data", self)
        self.loki_image = pinned_image(ctx.name("loki", "image"), settings.loki_image, self)
        self.loki = long_running_container(
            ctx,
            ctx.name("loki"),
            ContainerSpec(
                service="loki",
                role="logs",
                image=self.loki_image.image_id,
                memory_mb=settings.loki_memory_limit_mb,
                networks=[on_network(data_network, LOKI_HOSTNAME)],
                command=[f"-config.file={LOKI_CONFIG}"],
                files=[ConfigFile(LOKI_CONFIG, yaml.safe_dump(loki_config(settings), sort_keys=False))],
                volumes={"/loki": self.loki_volume.name},
                healthcheck=HealthCheck(LOKI_HEALTH, start_period="60s"),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.alloy_volume = named_volume(ctx, ctx.name("alloy", "positions"), "alloy", "positions", self)
        self.alloy_image = pinned_image(ctx.name("alloy", "image"), settings.alloy_image, self)
        self.alloy = long_running_container(
            ctx,
            ctx.name("alloy"),
            ContainerSpec(
                service="alloy",
                role="log-shipper",
                image=self.alloy_image.image_id,
                memory_mb=settings.alloy_memory_limit_mb,
                networks=[on_network(data_network)],
                command=[
                    "run",
                    f"--server.http.listen-addr=0.0.0.0:{ALLOY_PORT}",
                    "--storage.path=/var/lib/alloy/data",
                    ALLOY_CONFIG,
                ],
                files=[ConfigFile(ALLOY_CONFIG, alloy_config(ctx.environment))],
                volumes={"/var/lib/alloy/data": self.alloy_volume.name},
                host_mounts={DOCKER_LOGS: DOCKER_LOGS},
                healthcheck=HealthCheck(ALLOY_HEALTH),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.loki]),
        )
        self.register_outputs({"loki": self.loki.name, "alloy": self.alloy.name})
