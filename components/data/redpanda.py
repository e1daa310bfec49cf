"""Redpanda: the Kafka API for audit events, a single node on the internal data network.

Seastar's memory and cores come from config and sit inside the container's memory limit. The
broker advertises the `redpanda` alias, so the app's KAFKA_BROKERS is the same in every
environment.

Consumer-group lag is a metric Redpanda computes only when told to: the cluster properties that
switch it on (and collect it as often as the metrics collector scrapes) are in the bootstrap file
a new cluster reads on first start, and a one-shot job sets the same properties on a cluster that
already exists (the bootstrap file is read once, at cluster creation).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_docker as docker

from components.lib.containers import (
    ConfigFile,
    ContainerSpec,
    HealthCheck,
    long_running_container,
    named_volume,
    on_network,
    one_shot_container,
    pinned_image,
    script_job,
)
from components.lib.context import EnvironmentContext
from components.lib.files import read_shipped
from components.settings import RedpandaSettings

KAFKA_PORT = 9092
ADMIN_PORT = 9644
HOSTNAME = "redpanda"
DATA_DIR = "/var/lib/redpanda/data"
BOOTSTRAP_FILE = "/etc/redpanda/.bootstrap.yaml"
CONSUMER_GROUP_METRICS = ["group", "partition", "consumer_lag"]

# Healthy once the cluster reports itself healthy (all partitions have leaders), not merely
# once the process answers.
HEALTH_COMMAND = "rpk cluster health | grep -Eq '^Healthy:[[:space:]]+true'"


def start_command(settings: RedpandaSettings) -> list[str]:
    return [
        "redpanda",
        "start",
        # Containers share cores with others on the host: no busy-polling, no core pinning.
        "--overprovisioned",
        f"--smp={settings.cores}",
        f"--memory={settings.memory_mb}M",
        "--reserve-memory=0M",
        "--node-id=0",
        "--check=false",
        f"--kafka-addr=internal://0.0.0.0:{KAFKA_PORT}",
        f"--advertise-kafka-addr=internal://{HOSTNAME}:{KAFKA_PORT}",
        "--rpc-addr=0.0.0.0:33145",
        f"--advertise-rpc-addr={HOSTNAME}:33145",
        "--default-log-level=info",
    ]


def lag_metrics_properties(lag_interval_seconds: int) -> dict[str, object]:
    """Cluster properties for consumer-group lag metrics, refreshed as often as they are scraped.

    Redpanda refreshes no faster than `health_monitor_max_metadata_age` (10 s by default).
    """
    return {
        "enable_consumer_group_metrics": CONSUMER_GROUP_METRICS,
        "consumer_group_lag_collection_interval_sec": lag_interval_seconds,
    }


def bootstrap_file(lag_interval_seconds: int) -> str:
    # JSON is YAML; one property per line keeps the uploaded file readable in `docker exec cat`.
    properties = lag_metrics_properties(lag_interval_seconds)
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in properties.items())


# The one-shot job's script: sets the bootstrap file's properties on a cluster that exists.
CLUSTER_PROPERTIES_SCRIPT = read_shipped(__file__, "redpanda_cluster_properties.sh")


class Redpanda(pulumi.ComponentResource):
    volume: docker.Volume
    image: docker.RemoteImage
    container: docker.Container
    lag_metrics_job: docker.Container
    brokers: str = f"{HOSTNAME}:{KAFKA_PORT}"

    def __init__(
        self,
        name: str,
        settings: RedpandaSettings,
        *,
        ctx: EnvironmentContext,
        lag_interval_seconds: int,
        data_network: docker.Network,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("audit-x:data:Redpanda", name, None, opts)
        self.volume = named_volume(ctx, f"{name}-data", "redpanda", "data", self)
        self.image = pinned_image(f"{name}-image", settings.image, self)
        self.container = long_running_container(
            ctx,
            name,
            ContainerSpec(
                service="redpanda",
                role="broker",
                image=self.image.image_id,
                memory_mb=settings.memory_limit_mb,
                networks=[on_network(data_network, HOSTNAME)],
                command=start_command(settings),
                files=[ConfigFile(BOOTSTRAP_FILE, bootstrap_file(lag_interval_seconds))],
                volumes={DATA_DIR: self.volume.name},
                healthcheck=HealthCheck(HEALTH_COMMAND, start_period="60s"),
                stop_grace_seconds=60,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.lag_metrics_job = one_shot_container(
            ctx,
            f"{name}-lag-metrics",
            script_job(
                service="redpanda",
                role="lag-metrics",
                image=self.image.image_id,
                script=CLUSTER_PROPERTIES_SCRIPT,
                networks=[on_network(data_network)],
                env={"PROPERTIES_FILE": BOOTSTRAP_FILE, "ADMIN_HOSTS": f"{HOSTNAME}:{ADMIN_PORT}"},
                files=[ConfigFile(BOOTSTRAP_FILE, bootstrap_file(lag_interval_seconds))],
            ),
            pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
        )
        self.register_outputs({"container": self.container.name, "brokers": self.brokers})
